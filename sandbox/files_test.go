package sandbox

import (
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResolvConf(t *testing.T) {
	cases := []struct {
		dns  *runtime.DNSConfig
		want []string
	}{
		{&runtime.DNSConfig{Servers: []string{"10.0.0.10"}}, []string{"nameserver 10.0.0.10\n"}},
		{&runtime.DNSConfig{
			Servers: []string{"10.0.0.10", "fd00::a"}, Searches: []string{"a.svc", "svc"}, Options: []string{"ndots:5", "edns0"},
		}, []string{"search a.svc svc\n", "nameserver 10.0.0.10\nnameserver fd00::a\n", "options ndots:5 edns0\n"}},
		{&runtime.DNSConfig{}, nil},
	}
	for _, c := range cases {
		got := string(resolvConf(c.dns))
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("resolvConf(%v) = %q, lacks %q", c.dns, got, w)
			}
		}
		if c.want == nil && strings.Contains(got, "nameserver") {
			t.Errorf("resolvConf(empty) = %q", got)
		}
	}
}

func TestDefaultHosts(t *testing.T) {
	h := string(defaultHosts("web-0"))
	for _, w := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost", "web-0\n"} {
		if !strings.Contains(h, w) {
			t.Errorf("hosts lacks %q:\n%s", w, h)
		}
	}
	if strings.Contains(string(defaultHosts("")), "127.0.1.1") {
		t.Error("an empty hostname got a hosts entry")
	}
}
