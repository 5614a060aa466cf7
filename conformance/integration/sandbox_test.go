// Integration tests: a real huskd, real shims and pauses, real namespaces,
// mounts and cgroups, driven through k8s.io/cri-client as kubelet does.
package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

func nsenter(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestRuntimeInfo(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()

	v, err := h.Runtime.Version(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "husk" || v.RuntimeApiVersion != "v1" {
		t.Errorf("Version = %+v, want runtime_name husk and runtime_api_version v1", v)
	}

	st, err := h.Runtime.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtime.RuntimeCondition{}
	for _, c := range st.GetStatus().GetConditions() {
		conds[c.Type] = c
	}
	if c := conds[runtime.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %v, want true", c)
	}
	if c := conds[runtime.NetworkReady]; c == nil || !c.Status {
		t.Errorf("NetworkReady = %v, want true (the built-in network)", c)
	}
	if !strings.Contains(st.GetInfo()["config"], h.Root) {
		t.Errorf("verbose Status info[config] = %q, want the effective config naming root %s", st.GetInfo()["config"], h.Root)
	}

	rc, err := h.Runtime.RuntimeConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v, want CGROUPFS", rc.GetLinux().GetCgroupDriver())
	}

	cfg := &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.88.0.0/16,fd00:88::/64"}}
	if err := h.Runtime.UpdateRuntimeConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	st, _ = h.Runtime.Status(ctx, true)
	if got := st.GetInfo()["podCIDR"]; got != "10.88.0.0/16,fd00:88::/64" {
		t.Errorf("pod CIDR recorded as %q", got)
	}
	bad := &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.88.0.0/33"}}
	if err := h.Runtime.UpdateRuntimeConfig(ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("UpdateRuntimeConfig with a bad CIDR: %v, want InvalidArgument", err)
	}
}

func TestPodLifecycle(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	parent := h.CgroupParent()

	cfg := huskdtest.PodConfig("life")
	cfg.Metadata.Attempt = 3
	cfg.Hostname = "life-host"
	cfg.DnsConfig = &runtime.DNSConfig{
		Servers:  []string{"10.96.0.10", "fd00::10"},
		Searches: []string{"husktest.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5", "edns0"},
	}
	cfg.Linux.CgroupParent = parent
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "123", "kernel.shm_rmid_forced": "1"}
	id := h.RunPod(cfg)

	st, info := h.PodInfo(id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("state = %v, want READY", st.State)
	}
	if st.Metadata.Name != "life" || st.Metadata.Attempt != 3 || st.Metadata.Uid != "uid-life" || st.Metadata.Namespace != "husktest" {
		t.Errorf("metadata = %v", st.Metadata)
	}
	if fmt.Sprint(st.Labels) != fmt.Sprint(cfg.Labels) || fmt.Sprint(st.Annotations) != fmt.Sprint(cfg.Annotations) {
		t.Errorf("labels %v annotations %v, want %v %v", st.Labels, st.Annotations, cfg.Labels, cfg.Annotations)
	}
	if st.CreatedAt <= 0 || time.Since(time.Unix(0, st.CreatedAt)) > time.Minute {
		t.Errorf("created_at = %d", st.CreatedAt)
	}
	pause := info.Pid
	if !huskdtest.Alive(pause) || huskdtest.Cmdline(pause) != "/pause" {
		t.Fatalf("pause pid %d: alive %v cmdline %q", pause, huskdtest.Alive(pause), huskdtest.Cmdline(pause))
	}
	// The shim, not huskd, is the pause's parent.
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pause))
	if f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:]); f[1] != fmt.Sprint(info.ShimPid) {
		t.Errorf("pause's parent is %s, want the shim %d", f[1], info.ShimPid)
	}

	// Hostname, sysctls and loopback inside the pod's namespaces.
	if got := nsenter(t, "--uts="+info.Namespaces["uts"], "hostname"); got != "life-host" {
		t.Errorf("hostname = %q, want life-host", got)
	}
	if got := nsenter(t, "--net="+info.Namespaces["net"], "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); got != "123" {
		t.Errorf("net sysctl = %q, want 123", got)
	}
	if got := nsenter(t, "--ipc="+info.Namespaces["ipc"], "cat", "/proc/sys/kernel/shm_rmid_forced"); got != "1" {
		t.Errorf("ipc sysctl = %q, want 1", got)
	}
	if got := nsenter(t, "--net="+info.Namespaces["net"], "ip", "-o", "link", "show", "lo"); !strings.Contains(got, "UP") {
		t.Errorf("loopback is not up: %s", got)
	}

	// The pod's files.
	podDir := filepath.Join(h.Root, "pods", id)
	resolv, _ := os.ReadFile(filepath.Join(podDir, "resolv.conf"))
	for _, want := range []string{"nameserver 10.96.0.10\n", "nameserver fd00::10\n", "search husktest.svc.cluster.local svc.cluster.local\n", "options ndots:5 edns0\n"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	hosts, _ := os.ReadFile(filepath.Join(podDir, "hosts"))
	if !strings.Contains(string(hosts), "127.0.0.1\tlocalhost") || !strings.Contains(string(hosts), "life-host") {
		t.Errorf("hosts:\n%s", hosts)
	}
	if hn, _ := os.ReadFile(filepath.Join(podDir, "hostname")); string(hn) != "life-host\n" {
		t.Errorf("hostname file = %q", hn)
	}
	shm := mountInfo(t, info.ShmPath)
	if !strings.Contains(shm, " - tmpfs ") || !strings.Contains(shm, "size=65536k") || !strings.Contains(shm, "nosuid") || !strings.Contains(shm, "nodev") {
		t.Errorf("/dev/shm of the pod: %q, want a 64 MiB nosuid,nodev tmpfs", shm)
	}

	// The cgroup parent holds the pod's processes.
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pause))
	if !strings.Contains(string(cg), ":"+parent+"/"+id+"\n") {
		t.Errorf("pause's cgroups:\n%s\nwant %s/%s", cg, parent, id)
	}

	// Listed, with filters.
	pods, err := h.Runtime.ListPodSandbox(ctx, &runtime.PodSandboxFilter{Id: id[:12]})
	if err != nil || len(pods) != 1 || pods[0].Id != id {
		t.Errorf("list by ID prefix: %v %v", pods, err)
	}

	// Stop: processes gone, NotReady, shm released; a second stop is fine.
	if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, info2 := h.PodInfo(id)
	if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("state after stop = %v", st.State)
	}
	if huskdtest.Alive(pause) || huskdtest.Alive(info.ShimPid) {
		t.Errorf("after stop: pause alive %v, shim alive %v", huskdtest.Alive(pause), huskdtest.Alive(info.ShimPid))
	}
	if len(huskdtest.CgroupDirs(parent+"/"+id)) != 0 {
		t.Errorf("pod cgroup left after stop: %v", huskdtest.CgroupDirs(parent+"/"+id))
	}
	if mountInfo(t, info.ShmPath) != "" {
		t.Errorf("shm still mounted after stop")
	}
	if info2.Reason != "stopped" {
		t.Errorf("reason after stop = %q", info2.Reason)
	}
	if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Errorf("second stop: %v", err)
	}

	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Runtime.PodSandboxStatus(ctx, id, false); status.Code(err) != codes.NotFound {
		t.Errorf("status after remove: %v, want NotFound", err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if leaks := h.Leaks(); len(leaks) > 0 {
		t.Errorf("left after remove: %v", leaks)
	}
}

// mountInfo returns the mountinfo line of the mount at path, or "".
func mountInfo(t *testing.T, path string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return line
		}
	}
	return ""
}

func TestNamespaceModes(t *testing.T) {
	h := huskdtest.Start(t)
	self := os.Getpid()
	ref := h.RunPod(huskdtest.PodConfig("ref"))
	_, refInfo := h.PodInfo(ref)

	type want struct{ net, ipc, uts, pid string } // "host", "own"
	cases := []struct {
		name string
		opts *runtime.NamespaceOption
		want want
	}{
		{"all-pod", &runtime.NamespaceOption{}, want{"own", "own", "own", "own"}},
		{"host-network", &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}, want{"host", "own", "host", "own"}},
		{"host-ipc", &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}, want{"own", "host", "own", "own"}},
		{"host-pid", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}, want{"own", "own", "own", "host"}},
		{"pid-container", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}, want{"own", "own", "own", "own"}},
		{"pid-target", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}, want{"own", "own", "own", "own"}},
		{"all-host", &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE}, want{"host", "host", "host", "host"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := huskdtest.PodConfig("ns-" + c.name)
			cfg.Linux.SecurityContext.NamespaceOptions = c.opts
			id := h.RunPod(cfg)
			st, info := h.PodInfo(id)
			if st.State != runtime.PodSandboxState_SANDBOX_READY {
				t.Fatalf("state %v", st.State)
			}
			if got := st.GetLinux().GetNamespaces().GetOptions(); got.GetNetwork() != c.opts.Network || got.GetPid() != c.opts.Pid || got.GetIpc() != c.opts.Ipc {
				t.Errorf("status reports namespace options %v, want %v", got, c.opts)
			}
			for kind, w := range map[string]string{"net": c.want.net, "ipc": c.want.ipc, "uts": c.want.uts, "pid": c.want.pid} {
				pod, host, other := huskdtest.NS(t, info.Pid, kind), huskdtest.NS(t, self, kind), huskdtest.NS(t, refInfo.Pid, kind)
				switch w {
				case "host":
					if pod != host {
						t.Errorf("%s namespace %s, want the host's %s", kind, pod, host)
					}
				case "own":
					if pod == host || pod == other {
						t.Errorf("%s namespace %s, want its own (host %s, other pod %s)", kind, pod, host, other)
					}
				}
			}
			// Hostname: the pod's own, or the node's for host network.
			if c.want.uts == "own" {
				if got := nsenter(t, fmt.Sprintf("--uts=/proc/%d/ns/uts", info.Pid), "hostname"); got != cfg.Hostname {
					t.Errorf("hostname %q, want %q", got, cfg.Hostname)
				}
			}
			if c.want.ipc == "host" && info.ShmPath != "" {
				t.Errorf("host IPC pod has its own shm %s", info.ShmPath)
			}
			if err := h.Runtime.RemovePodSandbox(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if huskdtest.Alive(info.Pid) {
				t.Errorf("pause %d alive after remove", info.Pid)
			}
		})
	}
}

func TestPauseReapsOrphansInPodPIDNamespace(t *testing.T) {
	h := huskdtest.Start(t)
	id := h.RunPod(huskdtest.PodConfig("reaper"))
	_, info := h.PodInfo(id)
	children := func() []string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", info.Pid, info.Pid))
		return strings.Fields(string(b))
	}
	// sh starts five sleeps in the pod's PID namespace and exits: they are
	// orphaned and re-parented to the namespace's PID 1, the pause. Killed
	// together, their exits coalesce into fewer SIGCHLDs than children.
	// (They sleep until killed so that all five are counted however slow
	// the machine; their stdio must not be nsenter's pipes, or nsenter's
	// caller waits for them to exit.)
	nsenter(t, fmt.Sprintf("--pid=/proc/%d/ns/pid", info.Pid), "--", "sh", "-c",
		"for i in 1 2 3 4 5; do sleep 1000 </dev/null >/dev/null 2>&1 & done; exit 0")
	orphans := children()
	if len(orphans) != 5 {
		t.Fatalf("pause has children %v, want the 5 orphaned sleeps", orphans)
	}
	for _, p := range orphans {
		n, _ := strconv.Atoi(p)
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
	huskdtest.Eventually(t, 30*time.Second, "the orphans are reaped, not left as zombies", func() bool {
		for _, p := range orphans {
			if _, err := os.Stat("/proc/" + p); err == nil {
				return false
			}
		}
		return true
	})
	if !huskdtest.Alive(info.Pid) {
		t.Fatal("pause died")
	}
}

func TestRestartKeepsPods(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	a := h.RunPod(huskdtest.PodConfig("keep-a"))
	b := h.RunPod(huskdtest.PodConfig("keep-b"))
	c := h.RunPod(huskdtest.PodConfig("keep-c"))
	if err := h.Runtime.StopPodSandbox(ctx, c); err != nil {
		t.Fatal(err)
	}
	_, ia := h.PodInfo(a)

	for _, how := range []string{"SIGKILL", "SIGTERM"} {
		if how == "SIGKILL" {
			h.Kill()
		} else {
			h.Stop()
		}
		if !huskdtest.Alive(ia.Pid) || !huskdtest.Alive(ia.ShimPid) {
			t.Fatalf("after %s of huskd: pause alive %v, shim alive %v", how, huskdtest.Alive(ia.Pid), huskdtest.Alive(ia.ShimPid))
		}
		h.Launch()
		pods, err := h.Runtime.ListPodSandbox(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]runtime.PodSandboxState{}
		for _, p := range pods {
			got[p.Id] = p.State
		}
		want := map[string]runtime.PodSandboxState{
			a: runtime.PodSandboxState_SANDBOX_READY,
			b: runtime.PodSandboxState_SANDBOX_READY,
			c: runtime.PodSandboxState_SANDBOX_NOTREADY,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after %s and restart: pods %v, want %v", how, got, want)
		}
	}
	// The reconnected shim still serves: stopping through it works.
	if err := h.Runtime.StopPodSandbox(ctx, a); err != nil {
		t.Fatal(err)
	}
	if huskdtest.Alive(ia.Pid) || huskdtest.Alive(ia.ShimPid) {
		t.Errorf("after stop: pause alive %v, shim alive %v", huskdtest.Alive(ia.Pid), huskdtest.Alive(ia.ShimPid))
	}
}

func TestKilledShimMakesPodNotReady(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	parent := h.CgroupParent()
	cfg := huskdtest.PodConfig("shimkill")
	cfg.Linux.CgroupParent = parent
	id := h.RunPod(cfg)
	_, info := h.PodInfo(id)

	if err := syscall.Kill(info.ShimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 30*time.Second, "the pod is reported NOTREADY", func() bool {
		st, _ := h.PodInfo(id)
		return st.State == runtime.PodSandboxState_SANDBOX_NOTREADY
	})
	if _, i := h.PodInfo(id); i.Reason != "shim exited unexpectedly" {
		t.Errorf("reason = %q", i.Reason)
	}
	// Stop cleans up without the shim: the orphaned pause is killed through
	// the pod's cgroup, and the cgroup removed.
	if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if huskdtest.Alive(info.Pid) {
		t.Errorf("pause %d survived StopPodSandbox of a pod whose shim died", info.Pid)
	}
	if d := huskdtest.CgroupDirs(parent + "/" + id); len(d) != 0 {
		t.Errorf("pod cgroup left: %v", d)
	}

	// A shim that dies while huskd is down is noticed at restart.
	id2 := h.RunPod(huskdtest.PodConfig("shimkill2"))
	_, info2 := h.PodInfo(id2)
	h.Kill()
	_ = syscall.Kill(info2.ShimPid, syscall.SIGKILL)
	huskdtest.Eventually(t, 30*time.Second, "the shim is gone", func() bool { return !huskdtest.Alive(info2.ShimPid) })
	h.Launch()
	st, i2 := h.PodInfo(id2)
	if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || i2.Reason != "shim is not running" {
		t.Errorf("after restart: state %v reason %q, want NOTREADY, shim is not running", st.State, i2.Reason)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if huskdtest.Alive(info2.Pid) {
		t.Errorf("pause %d survived RemovePodSandbox", info2.Pid)
	}
}

func TestStopRemoveIdempotent(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	unknown := strings.Repeat("ab", 32)
	if err := h.Runtime.StopPodSandbox(ctx, unknown); err != nil {
		t.Errorf("stop of an unknown sandbox: %v, want success (api.proto)", err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, unknown); err != nil {
		t.Errorf("remove of an unknown sandbox: %v, want success (api.proto)", err)
	}
	if _, err := h.Runtime.PodSandboxStatus(ctx, unknown, false); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown sandbox: %v, want NotFound", err)
	}
	// Remove without stop stops first.
	id := h.RunPod(huskdtest.PodConfig("idem"))
	_, info := h.PodInfo(id)
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if huskdtest.Alive(info.Pid) {
		t.Error("pause alive after RemovePodSandbox of a running pod")
	}
	for i := 0; i < 2; i++ {
		if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
			t.Errorf("stop after remove: %v", err)
		}
		if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Errorf("remove after remove: %v", err)
		}
	}
}

func TestNameReservation(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	cfg := huskdtest.PodConfig("dup")
	id := h.RunPod(cfg)
	_, err := h.Runtime.RunPodSandbox(ctx, cfg, "")
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), id) {
		t.Errorf("second RunPodSandbox with the same metadata: %v, want AlreadyExists naming %s", err, id)
	}
	// Another attempt is another pod.
	cfg.Metadata.Attempt = 1
	id2 := h.RunPod(cfg)
	if id2 == id {
		t.Error("attempt 1 got the sandbox of attempt 0")
	}
	// Once removed, the name is free again.
	if err := h.Runtime.RemovePodSandbox(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if id3 := h.RunPod(cfg); id3 == id2 {
		t.Error("a new sandbox reused a removed ID")
	}
}

// slowShim starts huskd with a shim that takes a while to start, so that a
// RunPodSandbox outlives its caller's deadline as it can on a loaded node.
func slowShim(t *testing.T, delay time.Duration) *huskdtest.Huskd {
	return huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[runtime]\nshim_path = %q\n", slowShimPath(t, delay)))...)
}

// slowShimPath writes a shim that sleeps delay before it starts.
func slowShimPath(t *testing.T, delay time.Duration) string {
	wrapper := filepath.Join(t.TempDir(), "slow-shim")
	script := fmt.Sprintf("#!/bin/sh\nsleep %.1f\nexec %s \"$@\"\n", delay.Seconds(), filepath.Join(huskdtest.Bin(t), "husk-shim"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper
}

func TestRetryOfTimedOutRunPodSandbox(t *testing.T) {
	h := slowShim(t, 1500*time.Millisecond)

	run := func(cfg *runtime.PodSandboxConfig, timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := h.Raw.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		return resp.GetPodSandboxId(), err
	}
	countPods := func(name string) []string {
		pods, err := h.Runtime.ListPodSandbox(context.Background(), &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": name}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range pods {
			ids = append(ids, p.Id)
		}
		return ids
	}

	t.Run("retry while the first call still works", func(t *testing.T) {
		cfg := huskdtest.PodConfig("retry-busy")
		if _, err := run(cfg, 300*time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("first call: %v, want DeadlineExceeded", err)
		}
		id, err := run(cfg, 30*time.Second)
		if err != nil {
			t.Fatalf("retry: %v, want the first call's sandbox", err)
		}
		if ids := countPods("retry-busy"); len(ids) != 1 || ids[0] != id {
			t.Errorf("pods %v, want exactly the one the retry got (%s)", ids, id)
		}
		if _, err := run(cfg, 30*time.Second); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), id) {
			t.Errorf("third call: %v, want AlreadyExists naming %s", err, id)
		}
	})

	t.Run("retry after the first call finished unseen", func(t *testing.T) {
		cfg := huskdtest.PodConfig("retry-late")
		if _, err := run(cfg, 300*time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("first call: %v, want DeadlineExceeded", err)
		}
		huskdtest.Eventually(t, 10*time.Second, "the first call's sandbox is created", func() bool {
			return len(countPods("retry-late")) == 1
		})
		first := countPods("retry-late")[0]
		id, err := run(cfg, 30*time.Second)
		if err != nil || id != first {
			t.Fatalf("retry: %q, %v; want the first call's sandbox %s", id, err, first)
		}
		if _, err := run(cfg, 30*time.Second); status.Code(err) != codes.AlreadyExists {
			t.Errorf("third call: %v, want AlreadyExists", err)
		}
	})
}

func TestInvalidArgument(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	valid := func(mod func(*runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
		c := huskdtest.PodConfig("invalid")
		mod(c)
		return c
	}
	cases := []struct {
		name    string
		req     *runtime.RunPodSandboxRequest
		mention string
	}{
		{"no config", &runtime.RunPodSandboxRequest{}, "config"},
		{"no metadata", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Metadata = nil })}, "config.metadata"},
		{"empty name", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "" })}, "config.metadata.name"},
		{"empty uid", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Metadata.Uid = "" })}, "config.metadata.uid"},
		{"unknown handler", &runtime.RunPodSandboxRequest{Config: valid(func(*runtime.PodSandboxConfig) {}), RuntimeHandler: "kata"}, "runtime_handler"},
		{"network CONTAINER", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_CONTAINER
		})}, "namespace_options.network"},
		{"ipc TARGET", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_TARGET
		})}, "namespace_options.ipc"},
		{"pid mode out of range", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = 42
		})}, "namespace_options.pid"},
		{"cgroup parent escapes", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/../../etc" })}, "cgroup_parent"},
		{"node-wide sysctl", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.panic": "1"} })}, "sysctls"},
		{"net sysctl on host network", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		})}, "sysctls"},
		{"bad DNS server", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Servers: []string{"ns1.example"}}
		})}, "dns_config.servers"},
		{"hostname too long", &runtime.RunPodSandboxRequest{Config: valid(func(c *runtime.PodSandboxConfig) { c.Hostname = strings.Repeat("h", 65) })}, "hostname"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Raw.RunPodSandbox(ctx, c.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.mention) {
				t.Errorf("RunPodSandbox: %v; want InvalidArgument naming %q", err, c.mention)
			}
		})
	}
	for name, call := range map[string]func() error{
		"StopPodSandbox":   func() error { _, err := h.Raw.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{}); return err },
		"RemovePodSandbox": func() error { _, err := h.Raw.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{}); return err },
		"PodSandboxStatus": func() error { _, err := h.Raw.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{}); return err },
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_sandbox_id") {
			t.Errorf("%s with no ID: %v, want InvalidArgument naming pod_sandbox_id", name, err)
		}
	}
	if pods, _ := h.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("invalid requests created pods: %v", pods)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("invalid requests left: %v", leaks)
	}
}

func TestFailedRunPodSandboxLeavesNothing(t *testing.T) {
	t.Run("pause fails to start", func(t *testing.T) {
		h := huskdtest.Start(t)
		parent := h.CgroupParent()
		cfg := huskdtest.PodConfig("fail-sysctl")
		cfg.Linux.CgroupParent = parent
		// Valid as a name, refused by the kernel when the pause starts.
		cfg.Linux.Sysctls = map[string]string{"net.ipv4.no_such_sysctl": "1"}
		_, err := h.Runtime.RunPodSandbox(context.Background(), cfg, "")
		if err == nil || !strings.Contains(err.Error(), "no_such_sysctl") {
			t.Fatalf("RunPodSandbox: %v, want an error about the sysctl", err)
		}
		if leaks := h.Leaks(); len(leaks) != 0 {
			t.Errorf("a failed RunPodSandbox left: %v", leaks)
		}
		if d := huskdtest.CgroupDirs(parent); len(d) > 0 {
			for _, dir := range d {
				if entries, _ := filepath.Glob(dir + "/*/"); len(entries) > 0 {
					t.Errorf("cgroups left under %s: %v", dir, entries)
				}
			}
		}
		// The name is free for the retry.
		cfg.Linux.Sysctls = nil
		h.RunPod(cfg)
	})
	t.Run("shim fails to start", func(t *testing.T) {
		h := huskdtest.Start(t, huskdtest.Config(t, "[runtime]\nshim_path = \"/bin/false\"\n")...)
		_, err := h.Runtime.RunPodSandbox(context.Background(), huskdtest.PodConfig("fail-shim"), "")
		if err == nil || !strings.Contains(err.Error(), "shim exited") {
			t.Fatalf("RunPodSandbox: %v, want an error saying the shim exited", err)
		}
		if leaks := h.Leaks(); len(leaks) != 0 {
			t.Errorf("a failed RunPodSandbox left: %v", leaks)
		}
	})
}

func TestParallelRunPodSandbox(t *testing.T) {
	h := huskdtest.Start(t)
	ctx := context.Background()
	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ids[i], errs[i] = h.Runtime.RunPodSandbox(ctx, huskdtest.PodConfig(fmt.Sprintf("par-%02d", i)), "")
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("pod %d: %v", i, errs[i])
		}
		seen[ids[i]] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct IDs for %d pods", len(seen), n)
	}
	pods, err := h.Runtime.ListPodSandbox(ctx, &runtime.PodSandboxFilter{
		State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY},
	})
	if err != nil || len(pods) != n {
		t.Fatalf("%d READY pods (%v), want %d", len(pods), err, n)
	}
	for i := range ids {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
				t.Errorf("remove %s: %v", id, err)
			}
		}(ids[i])
	}
	wg.Wait()
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left after removing %d pods: %v", n, leaks)
	}
}

// huskd killed in the middle of RunPodSandbox: the restarted huskd rolls
// the half-made pod back, and a shim that starts after huskd died undoes
// its part when it finds nobody to report to. Restarted at once, huskd's
// recovery races the shim's start; restarted late, the shim has already
// started the pause and found huskd gone.
func TestCrashDuringRunPodSandboxLeavesNothing(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late restart %v", late), func(t *testing.T) {
			h := slowShim(t, 1500*time.Millisecond)
			parent := h.CgroupParent()
			cfg := huskdtest.PodConfig("crash")
			cfg.Linux.CgroupParent = parent
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _ = h.Raw.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
			}()
			// Then the record is written, the namespaces pinned, /dev/shm
			// mounted, and the shim's start under way.
			huskdtest.Eventually(t, 30*time.Second, "the pod's namespaces are pinned", func() bool {
				m, _ := filepath.Glob(filepath.Join(h.State, "pods", "*", "ns", "net"))
				return len(m) == 1
			})
			h.Kill()
			if late {
				// Nobody was there to tell: the shim stops its own pause
				// and exits.
				huskdtest.Eventually(t, 30*time.Second, "with huskd down, the late shim leaves no process", func() bool {
					return len(h.Processes()) == 0
				})
			}
			h.Launch()
			if pods, err := h.Runtime.ListPodSandbox(context.Background(), nil); err != nil || len(pods) != 0 {
				t.Errorf("after restart: pods %v, %v; want none", pods, err)
			}
			huskdtest.Eventually(t, 10*time.Second, "nothing of the pod is left", func() bool {
				return len(h.Leaks()) == 0
			})
			for _, d := range huskdtest.CgroupDirs(parent) {
				if sub, _ := filepath.Glob(d + "/*/"); len(sub) != 0 {
					t.Errorf("cgroups left: %v", sub)
				}
			}
			// The name is free again.
			h.RunPod(cfg)
		})
	}
}

func TestStreamPodSandboxes(t *testing.T) {
	h := huskdtest.Start(t)
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		want[h.RunPod(huskdtest.PodConfig(fmt.Sprintf("stream-%d", i)))] = true
	}
	collect := func(f *runtime.PodSandboxFilter) []string {
		stream, err := h.Raw.StreamPodSandboxes(context.Background(), &runtime.StreamPodSandboxesRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for {
			resp, err := stream.Recv()
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				return ids
			}
			if len(resp.PodSandboxes) == 0 {
				t.Error("an empty batch in the stream")
			}
			for _, p := range resp.PodSandboxes {
				ids = append(ids, p.Id)
			}
		}
	}
	got := collect(nil)
	if len(got) != 3 {
		t.Fatalf("streamed %v, want the 3 pods", got)
	}
	for _, id := range got {
		if !want[id] {
			t.Errorf("streamed unknown %s", id)
		}
	}
	if got := collect(&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "stream-1"}}); len(got) != 1 {
		t.Errorf("streamed with a label filter: %v", got)
	}
}

// A shim whose huskd gives the pod up before saying
// go exits at once, having started nothing and reported nothing.
func TestShimGivenUpBeforeGoExits(t *testing.T) {
	dir := t.TempDir()
	syncR, syncW, _ := os.Pipe()
	goR, goW, _ := os.Pipe()
	cmd := exec.Command(filepath.Join(huskdtest.Bin(t), "husk-shim"), "--id=given-up", "--dir="+dir, "--runc=/bin/false")
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{syncW, goR}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	syncW.Close()
	goR.Close()
	goW.Close() // huskd gives up
	report, _ := io.ReadAll(syncR)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the shim exited with %v, want 0", err)
	}
	if len(report) != 0 {
		t.Errorf("the shim reported %q", report)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the shim left %v", entries)
	}
}
