package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/network"
)

func podIP(t *testing.T, h *huskdtest.Huskd, id string) string {
	t.Helper()
	st, _ := h.PodInfo(id)
	ip := st.GetNetwork().GetIp()
	if _, err := netip.ParseAddr(ip); err != nil {
		t.Fatalf("pod %s has IP %q", id[:12], ip)
	}
	return ip
}

// webServer is a container serving body on :80 with busybox's httpd.
func webServer(name, body string) *runtime.ContainerConfig {
	return ctrConfig(name, "sh", "-c", fmt.Sprintf("mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 80 -h /www", body))
}

func TestPodNetwork(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	port := huskdtest.FreePort(t)
	a, aCfg := podWithLogs(t, h, "net-a", func(c *runtime.PodSandboxConfig) {
		c.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: int32(port)}}
	})
	b, bCfg := podWithLogs(t, h, "net-b", nil)
	ipA, ipB := podIP(t, h, a), podIP(t, h, b)
	if ipA == ipB {
		t.Fatalf("both pods have IP %s", ipA)
	}
	_, infoA := h.PodInfo(a)
	if out := nsenter(t, "--net="+infoA.Namespaces["net"], "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, ipA+"/") {
		t.Errorf("eth0 in pod a: %s, want %s", out, ipA)
	}
	runCtr(t, h, a, aCfg, webServer("web", "hello-from-a"))

	// Pod b reaches pod a over the bridge.
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st *runtime.ContainerStatus
		st, out = runToExit(t, h, b, bCfg, ctrConfig(fmt.Sprintf("get-%d", time.Now().UnixNano()), "husktest", "get", "http://"+ipA+"/"))
		out = fmt.Sprintf("exit %d %s %s: %s", st.GetExitCode(), st.GetReason(), st.GetMessage(), out)
		if strings.Contains(out, "hello-from-a") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod b (%s) cannot fetch pod a's page at %s: %s", ipB, ipA, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The host reaches the container through its hostPort on 127.0.0.1.
	var body []byte
	huskdtest.Eventually(t, 10*time.Second, "127.0.0.1:hostPort answers", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return strings.Contains(string(body), "hello-from-a")
	})

	// Stopping the pod frees its hostPort and its address.
	if err := h.Runtime.StopPodSandbox(ctx, a); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		resp.Body.Close()
		t.Errorf("hostPort %d still answers after StopPodSandbox", port)
	}
	if err := h.Runtime.StopPodSandbox(ctx, a); err != nil {
		t.Errorf("second stop: %v", err)
	}
	for _, id := range []string{a, b} {
		if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left after removing the pods: %v", leaks)
	}
}

func TestHostNetworkPodSkipsCNI(t *testing.T) {
	h := huskdtest.Start(t)
	cfg := huskdtest.PodConfig("hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	id := h.RunPod(cfg)
	st, info := h.PodInfo(id)
	if st.GetNetwork().GetIp() != "" || huskdtest.NS(t, info.Pid, "net") != huskdtest.NS(t, os.Getpid(), "net") {
		t.Errorf("host-network pod: ip %q", st.GetNetwork().GetIp())
	}
	if leases, _ := filepath.Glob(filepath.Join(h.Root, "cni", "networks", "*", "10.*")); len(leases) != 0 {
		t.Errorf("a host-network pod holds a lease: %v", leases)
	}
}

// A plugin that fails after the bridge plugin has set up the pod's
// interface: the bridge's work is undone and the error says what failed.
func TestFailingPluginIsRolledBack(t *testing.T) {
	dir := t.TempDir()
	bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{bin, conf} {
		_ = os.MkdirAll(d, 0o755)
	}
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"refused by the test plugin\"}'; exit 1; fi\necho '{}'\n"
	_ = os.WriteFile(filepath.Join(bin, "failer"), []byte(script), 0o755)
	bridge := fmt.Sprintf("hkf%d", time.Now().UnixNano()%100000)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	_ = os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "test",
		"plugins": [{"type": "bridge", "bridge": %q, "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.103.7.0/24"}]], "dataDir": %q}},
		            {"type": "failer"}]}`, bridge, filepath.Join(dir, "ipam"))), 0o644)
	h := huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[cni]\nconf_dir = %q\nbin_dirs = [%q, \"/usr/lib/cni\"]\n", conf, bin))...)
	_, err := h.Runtime.RunPodSandbox(context.Background(), huskdtest.PodConfig("failing"), "")
	if err == nil || !strings.Contains(err.Error(), "refused by the test plugin") {
		t.Fatalf("RunPodSandbox: %v, want the plugin's message", err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("a failed CNI ADD left: %v", leaks)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output(); len(out) != 0 {
		t.Errorf("veths left on %s: %s", bridge, out)
	}
	if leases, _ := filepath.Glob(filepath.Join(dir, "ipam", "test", "10.*")); len(leases) != 0 {
		t.Errorf("leases left: %v", leases)
	}
}

func TestManyPodsLeaveNoNetworkBehind(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 20; i++ {
		cfg := huskdtest.PodConfig(fmt.Sprintf("many-%02d", i))
		cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: int32(huskdtest.FreePort(t))}}
		ids = append(ids, h.RunPod(cfg))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		ip := podIP(t, h, id)
		if seen[ip] {
			t.Errorf("IP %s given twice", ip)
		}
		seen[ip] = true
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); !strings.Contains(string(out), ids[0]) {
		t.Errorf("no hostPort rule names pod %s: the leak check below would prove nothing", ids[0])
	}
	for _, id := range ids {
		if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("20 pods left: %v", leaks)
	}
}

// stopFreesLease checks that pod id holds a lease of the built-in network,
// runs breakIt, and checks that StopPodSandbox then gives the lease back.
func stopFreesLease(t *testing.T, h *huskdtest.Huskd, id string, breakIt func(ip string)) {
	t.Helper()
	ip := podIP(t, h, id)
	lease := filepath.Join(h.Root, "cni", "networks", "husk", ip)
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no lease for %s: %v", ip, err)
	}
	breakIt(ip)
	if err := h.Runtime.StopPodSandbox(context.Background(), id); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("lease %s still held after StopPodSandbox: %v", lease, err)
	}
}

func TestCNIDelAfterRestart(t *testing.T) {
	h := huskdtest.Start(t)
	id := h.RunPod(huskdtest.PodConfig("restart-net"))
	stopFreesLease(t, h, id, func(ip string) {
		h.Kill()
		h.Launch()
		if got := podIP(t, h, id); got != ip {
			t.Errorf("after restart the pod reports %s, had %s", got, ip)
		}
	})
}

// StopPodSandbox's CNI DEL when the pause process is gone: the pinned
// namespace keeps the pod's interface, so everything is undone.
func TestStopAfterPauseIsGone(t *testing.T) {
	h := huskdtest.Start(t)
	id := h.RunPod(huskdtest.PodConfig("paused-gone"))
	_, info := h.PodInfo(id)
	stopFreesLease(t, h, id, func(string) {
		if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	})
	if err := h.Runtime.RemovePodSandbox(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// When the namespace itself is gone (its pin unmounted by hand), DEL still
// runs: the lease is freed and the veth died with the namespace. Nothing of
// the pod stays in iptables: the built-in network masquerades per bridge,
// not per pod (the bridge plugin's ipMasq would leave the pod's chain here,
// as it learns the address to remove from inside the namespace).
func TestStopAfterNetnsIsGone(t *testing.T) {
	h := huskdtest.Start(t)
	id := h.RunPod(huskdtest.PodConfig("netns-gone"))
	_, info := h.PodInfo(id)
	stopFreesLease(t, h, id, func(string) {
		if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Unmount(info.Namespaces["net"], syscall.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	})
	if err := h.Runtime.RemovePodSandbox(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 30*time.Second, "no veth left on the bridge", func() bool {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", h.Bridge).Output()
		return len(out) == 0
	})
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// The built-in network's pods leave the subnet masqueraded by one chain
// per bridge, written with the first pod, and no rule of their own.
func TestBuiltinNetworkMasqueradesPerBridge(t *testing.T) {
	h := huskdtest.Start(t)
	ids := []string{h.RunPod(huskdtest.PodConfig("masq-1")), h.RunPod(huskdtest.PodConfig("masq-2"))}
	subnet := h.Subnet
	chain := "HUSK-MASQ-" + h.Bridge
	post, _ := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output()
	if n := strings.Count(string(post), "-s "+subnet+" "); n != 1 || !strings.Contains(string(post), "-j "+chain) {
		t.Errorf("POSTROUTING has %d rules for %s, want one jumping to %s:\n%s", n, subnet, chain, post)
	}
	rules, err := exec.Command("iptables", "-t", "nat", "-S", chain).Output()
	if err != nil {
		t.Fatalf("chain %s: %v", chain, err)
	}
	for _, want := range []string{"-d " + subnet + " ", "-d 224.0.0.0/4 ", "-j MASQUERADE"} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("chain %s lacks %q:\n%s", chain, want, rules)
		}
	}
	nat, _ := exec.Command("iptables-save", "-t", "nat").Output()
	for _, id := range ids {
		if strings.Contains(string(nat), id) {
			t.Errorf("a rule names pod %s:\n%s", id, nat)
		}
	}
	if err := network.RemoveMasquerade(h.Bridge); err != nil {
		t.Fatal(err)
	}
	if nat, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(nat), chain) {
		t.Errorf("RemoveMasquerade left:\n%s", nat)
	}
}

// kubelet's pod CIDR replaces the built-in network's subnet for the next
// pod; a dual-stack CIDR gives pods an address of each family.
func TestPodCIDRFeedsTheBuiltinNetwork(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	huskdtest.RestoreSysctl(t, "/proc/sys/net/ipv6/conf/all/forwarding")
	cidr := fmt.Sprintf("10.106.%d.0/24,fd00:106:%x::/64", time.Now().UnixNano()%250, time.Now().UnixNano()%0xffff)
	if err := h.Runtime.UpdateRuntimeConfig(ctx, &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}); err != nil {
		t.Fatal(err)
	}
	id := h.RunPod(huskdtest.PodConfig("cidr"))
	st, _ := h.PodInfo(id)
	v4, _, _ := strings.Cut(strings.Split(cidr, ",")[0], ".0/24")
	if ip := st.GetNetwork().GetIp(); !strings.HasPrefix(ip, v4+".") {
		t.Errorf("pod IP %s is not from the pod CIDR %s", ip, cidr)
	}
	extra := st.GetNetwork().GetAdditionalIps()
	if len(extra) != 1 {
		t.Fatalf("additional IPs %v, want one IPv6 address", extra)
	}
	prefix := netip.MustParsePrefix(strings.Split(cidr, ",")[1])
	if a, err := netip.ParseAddr(extra[0].GetIp()); err != nil || !prefix.Contains(a) {
		t.Errorf("additional IP %s is not in %s", extra[0].GetIp(), prefix)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("a dual-stack pod left: %v", leaks)
	}
}

func TestNetworkReadyFollowsTheConfigDirectory(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "net.d")
	_ = os.MkdirAll(conf, 0o755)
	bridge := fmt.Sprintf("hkr%d", time.Now().UnixNano()%100000)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	broken := filepath.Join(conf, "10-net.conflist")
	_ = os.WriteFile(broken, []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nosuchplugin"}]}`), 0o644)
	h := huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[cni]\nconf_dir = %q\n", conf))...)
	ctx := context.Background()
	netReady := func() *runtime.RuntimeCondition {
		st, err := h.Runtime.Status(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.GetStatus().GetConditions() {
			if c.Type == runtime.NetworkReady {
				return c
			}
		}
		t.Fatal("no NetworkReady condition")
		return nil
	}
	if c := netReady(); c.Status || c.Reason != "NetworkPluginNotReady" || !strings.Contains(c.Message, "nosuchplugin") {
		t.Errorf("with a plugin missing: %v", c)
	}
	if _, err := h.Runtime.RunPodSandbox(ctx, huskdtest.PodConfig("early"), ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RunPodSandbox without a network: %v, want FailedPrecondition", err)
	}
	_ = os.WriteFile(broken, []byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge", "bridge": %q,
		"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.103.9.0/24"}]], "dataDir": %q}}]}`, bridge, filepath.Join(dir, "ipam"))), 0o644)
	huskdtest.Eventually(t, 30*time.Second, "NetworkReady turns true", func() bool { return netReady().Status })
	id := h.RunPod(huskdtest.PodConfig("late"))
	if ip := podIP(t, h, id); !strings.HasPrefix(ip, "10.103.9.") {
		t.Errorf("pod IP %s is not from the new configuration", ip)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Without any configuration, the built-in network.
	_ = os.Remove(broken)
	huskdtest.Eventually(t, 30*time.Second, "the built-in network is back", func() bool { return netReady().Status })
}

// The built-in network runs portmap and bandwidth only for pods that have
// host ports or bandwidth annotations (for the others they would do
// nothing but cost an exec on ADD and on DEL); DEL replays the list ADD
// ran, so a pod that has them loses its port rules and shaping with it.
func TestBuiltinNetworkRunsOnlyThePluginsAPodNeeds(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	plain := h.RunPod(huskdtest.PodConfig("plain"))
	cfg := huskdtest.PodConfig("shaped")
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: int32(huskdtest.FreePort(t))}}
	cfg.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "10M"}
	shaped := h.RunPod(cfg)
	plugins := func(id string) []string {
		b, err := os.ReadFile(filepath.Join(h.Root, "cni", "cache", "results", "husk-"+id+"-eth0"))
		if err != nil {
			t.Fatalf("libcni's cache of pod %s: %v", id[:12], err)
		}
		var cached struct {
			Config []byte `json:"config"`
		}
		var list struct{ Plugins []struct{ Type string } }
		if err := json.Unmarshal(b, &cached); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(cached.Config, &list); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range list.Plugins {
			out = append(out, p.Type)
		}
		return out
	}
	if got := plugins(plain); !reflect.DeepEqual(got, []string{"bridge"}) {
		t.Errorf("a pod without host ports or bandwidth ran %v, want the bridge alone", got)
	}
	if got := plugins(shaped); !reflect.DeepEqual(got, []string{"bridge", "portmap", "bandwidth"}) {
		t.Errorf("a pod with both ran %v", got)
	}
	nat, _ := exec.Command("iptables-save", "-t", "nat").Output()
	if !strings.Contains(string(nat), shaped) {
		t.Error("no hostPort rule names the pod with a host port")
	}
	ifbs := func() string {
		out, _ := exec.Command("ip", "-o", "link", "show", "type", "ifb").Output()
		return string(out)
	}
	if !strings.Contains(ifbs(), "bwp") {
		t.Errorf("no ifb device shapes the pod's egress: %q", ifbs())
	}
	for _, id := range []string{plain, shaped} {
		if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
	if s := ifbs(); strings.Contains(s, "bwp") {
		t.Errorf("the bandwidth plugin's device stayed: %s", s)
	}
}
