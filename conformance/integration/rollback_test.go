package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// flakyDel is a CNI network for one test: bridge with host-local, then a
// plugin whose DEL fails while the file failDel exists. It is last in the
// chain, so its DEL runs first and stops the bridge's: the lease stays.
type flakyDel struct {
	toml, failDel, bridge, ipam string
}

func newFlakyDel(t *testing.T) *flakyDel {
	dir := t.TempDir()
	bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{bin, conf} {
		_ = os.MkdirAll(d, 0o755)
	}
	n := &flakyDel{failDel: filepath.Join(dir, "fail-del"), bridge: fmt.Sprintf("hkr%d", time.Now().UnixNano()%100000), ipam: filepath.Join(dir, "ipam")}
	if err := os.WriteFile(n.failDel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nif [ \"$CNI_COMMAND\" = DEL ] && [ -e %s ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"DEL refused by the test plugin\"}'; exit 1; fi\nexec /usr/lib/cni/tuning\n", n.failDel)
	_ = os.WriteFile(filepath.Join(bin, "flaky"), []byte(script), 0o755)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", n.bridge).Run() })
	_ = os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "test",
		"plugins": [{"type": "bridge", "bridge": %q, "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.103.9.0/24"}]], "dataDir": %q}},
		            {"type": "flaky"}]}`, n.bridge, n.ipam)), 0o644)
	n.toml = fmt.Sprintf("[cni]\nconf_dir = %q\nbin_dirs = [%q, \"/usr/lib/cni\"]\n", conf, bin)
	return n
}

func (n *flakyDel) leases() []string {
	l, _ := filepath.Glob(filepath.Join(n.ipam, "test", "10.*"))
	return l
}

// listedNotReady is the ID of the one pod labelled app, which must be
// NotReady.
func listedNotReady(t *testing.T, h *huskdtest.Huskd, app string) string {
	t.Helper()
	pods, err := h.Runtime.ListPodSandbox(context.Background(), &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": app}})
	if err != nil || len(pods) != 1 || pods[0].State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pods %v, %v: want the one whose rollback failed, NotReady", pods, err)
	}
	return pods[0].Id
}

// removeKeptPod lets DEL work again and checks that RemovePodSandbox frees
// everything of pod id: lease, veth, pins, directories.
func removeKeptPod(t *testing.T, h *huskdtest.Huskd, n *flakyDel, id string) {
	t.Helper()
	ctx := context.Background()
	if err := os.Remove(n.failDel); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if pods, _ := h.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("pods left: %v", pods)
	}
	if l := n.leases(); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left after RemovePodSandbox: %v", leaks)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", n.bridge).Output(); len(out) != 0 {
		t.Errorf("veths left on %s: %s", n.bridge, out)
	}
}

// A RunPodSandbox that fails after CNI ADD (the pause refuses a sysctl)
// while the plugin refuses DEL: the rollback cannot give the address back,
// so the pod is kept, NotReady, across a restart too, and RemovePodSandbox
// finishes the job once DEL works.
func TestFailedRollbackKeepsThePod(t *testing.T) {
	n := newFlakyDel(t)
	h := huskdtest.Start(t, huskdtest.Config(t, n.toml)...)
	t.Cleanup(func() { _ = os.Remove(n.failDel) }) // before huskdtest's cleanup removes the pods
	cfg := huskdtest.PodConfig("rollback-fails")
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.no_such_sysctl": "1"} // refused when the pause starts
	_, err := h.Runtime.RunPodSandbox(context.Background(), cfg, "")
	if err == nil || !strings.Contains(err.Error(), "no_such_sysctl") || !strings.Contains(err.Error(), "DEL refused by the test plugin") {
		t.Fatalf("RunPodSandbox: %v, want the sysctl's error and the failed rollback's", err)
	}
	if len(n.leases()) != 1 {
		t.Fatalf("leases %v: want the one DEL could not free", n.leases())
	}
	id := listedNotReady(t, h, "rollback-fails")
	h.Kill()
	h.Launch()
	if got := listedNotReady(t, h, "rollback-fails"); got != id {
		t.Errorf("after a restart pod %s is listed, want %s", got, id)
	}
	removeKeptPod(t, h, n, id)
}

// huskd killed during RunPodSandbox, and the restarted huskd's rollback
// fails (DEL refused): the pod is listed NotReady, not left unseen until
// some later restart, and RemovePodSandbox finishes the job.
func TestInterruptedRunPodSandboxWhoseRollbackFailsIsKept(t *testing.T) {
	n := newFlakyDel(t)
	h := huskdtest.Start(t, huskdtest.Config(t, n.toml+fmt.Sprintf("[runtime]\nshim_path = %q\n", slowShimPath(t, 1500*time.Millisecond)))...)
	t.Cleanup(func() { _ = os.Remove(n.failDel) })
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = h.Raw.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: huskdtest.PodConfig("rollback-crash")})
	}()
	huskdtest.Eventually(t, 30*time.Second, "the pod's namespaces are pinned", func() bool {
		m, _ := filepath.Glob(filepath.Join(h.State, "pods", "*", "ns", "net"))
		return len(m) == 1
	})
	h.Kill()
	// The late shim finds nobody to report to and stops its pause.
	huskdtest.Eventually(t, 15*time.Second, "the late shim is gone", func() bool { return len(h.Processes()) == 0 })
	h.Launch()
	removeKeptPod(t, h, n, listedNotReady(t, h, "rollback-crash"))
}

// A CreateContainer that fails after the shim created the container (its
// record cannot be written: a husk-runc wrapper made the container's
// directory immutable) and whose rollback fails too (the directory cannot
// be removed): the container is kept, exited, with its image lease, and
// RemoveContainer finishes the job once the directory can go.
func TestFailedContainerRollbackKeepsTheContainer(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "husk-runc")
	// The bundle is <dir>/state/pods/<pod>/containers/<id>, the container's
	// directory <dir>/root/containers/<id>.
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
	case "$a" in
	--spec=*/containers/*/config.json)
		b=$(dirname "${a#--spec=}")
		d=$(dirname "$(dirname "$(dirname "$(dirname "$(dirname "$b")")")")")
		chattr +i "$d/root/containers/$(basename "$b")" ;;
	esac
done
exec %s "$@"
`, filepath.Join(huskdtest.Bin(t), "husk-runc"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h, _ := ctrHuskd(t, fmt.Sprintf("[runtime]\nrunc_path = %q\n", wrapper))
	mutable := func() {
		dirs, _ := filepath.Glob(filepath.Join(h.Root, "containers", "*"))
		for _, d := range dirs {
			_ = exec.Command("chattr", "-i", d).Run()
		}
	}
	t.Cleanup(mutable) // before huskdtest's cleanup removes the pods
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "ctr-rollback", nil)
	_, err := h.Runtime.CreateContainer(ctx, pod, ctrConfig("kept", "sleep", "60"), podCfg)
	if err == nil || !strings.Contains(err.Error(), "rollback failed too") {
		t.Fatalf("CreateContainer: %v, want the failed rollback's error", err)
	}
	ctrs, err := h.Runtime.ListContainers(ctx, &runtime.ContainerFilter{PodSandboxId: pod})
	if err != nil || len(ctrs) != 1 || ctrs[0].State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("containers %v, %v: want the one whose rollback failed, exited", ctrs, err)
	}
	id := ctrs[0].Id
	dir := filepath.Join(h.Root, "containers", id)
	index := filepath.Join(h.Root, "images", "index.json")
	leased := func() bool {
		b, err := os.ReadFile(index)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `"`+id+`"`)
	}
	if _, err := os.Stat(dir); err != nil || !leased() {
		t.Fatalf("directory %s (%v) or image lease (%v) of the kept container gone", dir, err, leased())
	}

	mutable()
	if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if ctrs, _ := h.Runtime.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Errorf("containers left: %v", ctrs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left: %v", dir, err)
	}
	if leased() {
		t.Errorf("image lease of %s left", id)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}
