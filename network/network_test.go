package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParseQuantity(t *testing.T) {
	cases := map[string]uint64{
		"100000": 100000, "10M": 10_000_000, "1k": 1000, "1Ki": 1024, "1.5Mi": 1572864, "2G": 2_000_000_000, "0.5k": 500, "1.0001k": 1001,
	}
	for in, want := range cases {
		if got, err := parseQuantity(in); err != nil || got != want {
			t.Errorf("parseQuantity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1M", "0", "1e6", "ten", "1/2", "99999999999E"} {
		if got, err := parseQuantity(bad); err == nil {
			t.Errorf("parseQuantity(%q) = %d, want an error", bad, got)
		}
	}
}

func TestRuntimeConf(t *testing.T) {
	p := Pod{
		ID: "abc", Name: "web", Namespace: "prod", UID: "u1", NetNS: "/run/husk/pods/abc/ns/net",
		PortMappings: []*runtime.PortMapping{
			{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"},
			{Protocol: runtime.Protocol_UDP, ContainerPort: 53, HostPort: 5353},
			{Protocol: runtime.Protocol_TCP, ContainerPort: 9090}, // no host port: not mapped
		},
		DNS:         &runtime.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc"}, Options: []string{"ndots:5"}},
		Annotations: map[string]string{ingressAnnotation: "10M"},
	}
	rc, err := p.runtimeConf()
	if err != nil {
		t.Fatal(err)
	}
	if rc.ContainerID != "abc" || rc.IfName != "eth0" || rc.NetNS != p.NetNS {
		t.Errorf("runtime conf %+v", rc)
	}
	args := map[string]string{}
	for _, a := range rc.Args {
		args[a[0]] = a[1]
	}
	for k, v := range map[string]string{"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "prod", "K8S_POD_NAME": "web", "K8S_POD_INFRA_CONTAINER_ID": "abc", "K8S_POD_UID": "u1"} {
		if args[k] != v {
			t.Errorf("CNI_ARGS %s = %q, want %q", k, args[k], v)
		}
	}
	b, _ := json.Marshal(rc.CapabilityArgs)
	for _, want := range []string{`"hostPort":8080`, `"hostIP":"127.0.0.1"`, `"protocol":"udp"`, `"servers":["10.0.0.10"]`, `"ingressRate":10000000`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("capability args %s lack %s", b, want)
		}
	}
	if strings.Contains(string(b), "9090") {
		t.Errorf("a port without host port was mapped: %s", b)
	}
	p.Annotations = map[string]string{egressAnnotation: "fast"}
	if _, err := p.runtimeConf(); err == nil {
		t.Error("a bad bandwidth annotation was accepted")
	}
}

func TestBuiltin(t *testing.T) {
	b, err := Builtin(Config{BridgeName: "husk0", Subnet: "10.88.0.0/16", IPAMDataDir: "/x"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"bridge":"husk0"`, `"subnet":"10.88.0.0/16"`, `"type":"portmap"`, `"dataDir":"/x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("built-in config lacks %s: %s", want, b)
		}
	}
	b, err = Builtin(Config{BridgeName: "husk0", Subnet: "10.88.0.0/16"}, "10.244.1.0/24,fd00:1::/64")
	if err != nil || !strings.Contains(string(b), `"subnet":"10.244.1.0/24"`) || !strings.Contains(string(b), `"subnet":"fd00:1::/64"`) || !strings.Contains(string(b), `"dst":"::/0"`) {
		t.Errorf("with a dual-stack pod CIDR: %s, %v", b, err)
	}
	if _, err := Builtin(Config{Subnet: "nonsense"}, ""); err == nil {
		t.Error("a bad subnet was accepted")
	}
}

func TestBuiltinLeavesOutWhatAPodDoesNotNeed(t *testing.T) {
	cfg := Config{BridgeName: "husk0", Subnet: "10.88.0.0/16"}
	cases := []struct {
		portmap, bandwidth bool
		want               []string
	}{
		{false, false, []string{"bridge"}},
		{true, false, []string{"bridge", "portmap"}},
		{false, true, []string{"bridge", "bandwidth"}},
		{true, true, []string{"bridge", "portmap", "bandwidth"}},
	}
	for _, c := range cases {
		b, err := builtin(cfg, "", c.portmap, c.bandwidth)
		if err != nil {
			t.Fatal(err)
		}
		var conf struct{ Plugins []struct{ Type string } }
		if err := json.Unmarshal(b, &conf); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range conf.Plugins {
			got = append(got, p.Type)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("portmap %v bandwidth %v: plugins %v, want %v", c.portmap, c.bandwidth, got, c.want)
		}
	}
	full, _ := Builtin(cfg, "")
	all, _ := builtin(cfg, "", true, true)
	if string(full) != string(all) {
		t.Errorf("Builtin (what other runtimes get) is not the full list:\n%s\n%s", full, all)
	}
}

func TestWaitForPlugins(t *testing.T) {
	// The plugin runs until killed, so that it is still there to be seen
	// however slow the machine; it is killed while waitForPlugins waits.
	cmd := exec.Command("sleep", "1000")
	cmd.Env = []string{"CNI_CONTAINERID=test-waits-for-me"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if !pluginRunning([]byte("CNI_CONTAINERID=test-waits-for-me\x00")) {
		t.Fatal("a process with the pod's CNI_CONTAINERID is not seen")
	}
	go func() {
		time.Sleep(300 * time.Millisecond) // a pace, not a guess: waitForPlugins must wait however long
		_ = cmd.Process.Kill()
	}()
	waitForPlugins(context.Background(), "test-waits-for-me")
	// Exited: a zombie at most, until Wait reaps it.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Errorf("waitForPlugins returned while the plugin still ran: %s", st)
	}
	<-done
	if pluginRunning([]byte("CNI_CONTAINERID=test-waits-for\x00")) {
		t.Error("a prefix of the ID matched")
	}
}
