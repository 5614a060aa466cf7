package hosts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	write := func(host, body string) {
		t.Helper()
		d := filepath.Join(dir, host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("registry.k8s.io", `
server = "https://registry.k8s.io"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]

[host."https://mirror.example:8443"]
  capabilities = ["pull"]
  skip_verify = true
  ca = ["ca1.crt", "/etc/ssl/ca2.crt"]
  client = [["client.cert", "client.key"]]
  [host."https://mirror.example:8443".header]
    x-team = "infra"
    x-multi = ["a", "b"]
`)
	write("_default", `[host."http://127.0.0.1:6000"]
capabilities = ["pull", "resolve"]
`)
	write("certs.only:5000", "")
	_ = os.WriteFile(filepath.Join(dir, "certs.only:5000", "ca.crt"), nil, 0o644)
	write("bad", `[host."ftp://x"]`)
	write("typo", "sever = \"https://x\"\n")

	cases := []struct {
		registry string
		want     []string // String() of each host, in order
		check    func(t *testing.T, hs []Host)
		err      string
	}{
		{registry: "registry.k8s.io", want: []string{"http://127.0.0.1:5000", "https://mirror.example:8443", "https://registry.k8s.io"},
			check: func(t *testing.T, hs []Host) {
				if !hs[0].Can(Pull|Resolve) || hs[0].Can(Push) || !hs[0].Insecure() {
					t.Errorf("first host %+v", hs[0])
				}
				m := hs[1]
				if m.Can(Resolve) || !m.SkipVerify || m.Header.Get("x-team") != "infra" || !reflect.DeepEqual(m.Header.Values("x-multi"), []string{"a", "b"}) {
					t.Errorf("mirror %+v", m)
				}
				if !reflect.DeepEqual(m.CAs, []string{filepath.Join(dir, "registry.k8s.io", "ca1.crt"), "/etc/ssl/ca2.crt"}) {
					t.Errorf("CAs %v", m.CAs)
				}
				if !reflect.DeepEqual(m.Clients, [][2]string{{filepath.Join(dir, "registry.k8s.io", "client.cert"), filepath.Join(dir, "registry.k8s.io", "client.key")}}) {
					t.Errorf("clients %v", m.Clients)
				}
				if !hs[2].Can(Pull | Resolve | Push) {
					t.Errorf("server caps %v", hs[2].Capabilities)
				}
			}},
		{registry: "quay.io", want: []string{"http://127.0.0.1:6000", "https://quay.io"}},
		{registry: "docker.io", want: []string{"http://127.0.0.1:6000", "https://registry-1.docker.io"}},
		{registry: "certs.only:5000", want: []string{"https://certs.only:5000"}, check: func(t *testing.T, hs []Host) {
			if len(hs[0].CAs) != 1 {
				t.Errorf("docker-style CA not found: %v", hs[0].CAs)
			}
		}},
		{registry: "bad", err: "scheme"},
		{registry: "typo", err: "sever"},
	}
	for _, c := range cases {
		t.Run(c.registry, func(t *testing.T) {
			hs, err := Lookup(dir, c.registry)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one about %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hs {
				got = append(got, h.String())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("hosts %v, want %v", got, c.want)
			}
			if c.check != nil {
				c.check(t, hs)
			}
		})
	}
	if hs, _ := Lookup("", "docker.io"); len(hs) != 1 || hs[0].String() != "https://registry-1.docker.io" {
		t.Errorf("no config dir: %v", hs)
	}
}
