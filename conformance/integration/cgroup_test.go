package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/systemd"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// These tests run on whichever cgroup version the machine has: the v1
// hybrid host in `make test`, the cgroup v2 VM in `make test-cgroupv2`
// (with systemd as its init, where the systemd driver's test runs too).

// ctrCgroup is a container's cgroup (cgroupfs form) from its verbose
// status.
func ctrCgroup(t *testing.T, h *huskdtest.Huskd, id string) string {
	t.Helper()
	resp, err := h.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CgroupPath string `json:"cgroupPath"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.CgroupPath == "" {
		t.Fatalf("verbose info of %s: %q, %v", id, info.CgroupPath, err)
	}
	return info.CgroupPath
}

// podCgroup is a pod's (its pause's) cgroup from its verbose status.
func podCgroup(t *testing.T, h *huskdtest.Huskd, id string) string {
	t.Helper()
	resp, err := h.Runtime.PodSandboxStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CgroupPath string `json:"cgroupPath"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.CgroupPath == "" {
		t.Fatalf("verbose info of pod %s: %q, %v", id, info.CgroupPath, err)
	}
	return info.CgroupPath
}

// cgroupFile is the path of a cgroup's file: under the controller's
// hierarchy on v1 (ctrlV1), in the one hierarchy on v2.
func cgroupFile(cg, ctrlV1, file string) string {
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join("/sys/fs/cgroup", cg, file)
	}
	return filepath.Join("/sys/fs/cgroup", ctrlV1, cg, file)
}

func readCgroupFile(t *testing.T, cg, ctrlV1, file string) string {
	t.Helper()
	b, err := os.ReadFile(cgroupFile(cg, ctrlV1, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// limitFiles are where a container's CPU and memory limits show, per
// cgroup version, in the kernel's words.
func limitFiles(memory, shares, quota, period int64) map[[2]string]string {
	if cgroups.IsCgroup2UnifiedMode() {
		return map[[2]string]string{
			{"", "memory.max"}: strconv.FormatInt(memory, 10),
			{"", "cpu.weight"}: strconv.FormatUint(cgroups.ConvertCPUSharesToCgroupV2Value(uint64(shares)), 10),
			{"", "cpu.max"}:    strconv.FormatInt(quota, 10) + " " + strconv.FormatInt(period, 10),
		}
	}
	return map[[2]string]string{
		{"memory", "memory.limit_in_bytes"}: strconv.FormatInt(memory, 10),
		{"cpu", "cpu.shares"}:               strconv.FormatInt(shares, 10),
		{"cpu", "cpu.cfs_quota_us"}:         strconv.FormatInt(quota, 10),
		{"cpu", "cpu.cfs_period_us"}:        strconv.FormatInt(period, 10),
	}
}

func checkLimits(t *testing.T, cg string, want map[[2]string]string) {
	t.Helper()
	for f, v := range want {
		if got := readCgroupFile(t, cg, f[0], f[1]); got != v {
			t.Errorf("%s = %q, want %q", cgroupFile(cg, f[0], f[1]), got, v)
		}
	}
}

// A running container's resources changed by UpdateContainerResources
// show in its cgroup, in the files of the host's cgroup version, and in
// ContainerStatus.
func TestUpdateContainerResources(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	parent := h.CgroupParent()
	pod, podCfg := podWithLogs(t, h, "update", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = parent })
	cfg := ctrConfig("limited", "sleep", "1000")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 200000}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	if want := filepath.Join(parent, id); cg != want {
		t.Errorf("container cgroup %s, want %s", cg, want)
	}
	checkLimits(t, cg, limitFiles(128<<20, 512, 200000, 100000))

	upd := &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000}
	if err := h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: upd}); err != nil {
		t.Fatal(err)
	}
	checkLimits(t, cg, limitFiles(64<<20, 256, 50000, 100000))
	r := ctrStatus(t, h, id).GetResources().GetLinux()
	if r.GetMemoryLimitInBytes() != 64<<20 || r.GetCpuShares() != 256 || r.GetCpuQuota() != 50000 {
		t.Errorf("ContainerStatus.resources after update: %v", r)
	}
}

// LinuxContainerResources.unified sets cgroup v2 files by name; on v1 it
// cannot be honoured and is refused by name.
func TestUnifiedResources(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "unified", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = h.CgroupParent() })
	cfg := ctrConfig("unified", "sleep", "1000")
	// pids.max: the CRI has no field of its own for a container's pids
	// limit (kubelet limits the pod's cgroup itself); unified sets it.
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, Unified: map[string]string{"memory.high": strconv.Itoa(96 << 20), "pids.max": "64"}}
	if !cgroups.IsCgroup2UnifiedMode() {
		_, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "unified") {
			t.Fatalf("CreateContainer with unified on cgroup v1: %v, want InvalidArgument naming unified", err)
		}
		return
	}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	if got := readCgroupFile(t, cg, "", "memory.high"); got != strconv.Itoa(96<<20) {
		t.Errorf("memory.high = %s, want %d", got, 96<<20)
	}
	if got := readCgroupFile(t, cg, "", "pids.max"); got != "64" {
		t.Errorf("pids.max = %s, want 64", got)
	}
	upd := &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, Unified: map[string]string{"memory.high": strconv.Itoa(80 << 20)}}
	if err := h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: upd}); err != nil {
		t.Fatal(err)
	}
	if got := readCgroupFile(t, cg, "", "memory.high"); got != strconv.Itoa(80<<20) {
		t.Errorf("memory.high after update = %s, want %d", got, 80<<20)
	}
}

// A container's cpuset shows in its cgroup's cpuset.cpus.
func TestCpusetResources(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "cpuset", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = h.CgroupParent() })
	cfg := ctrConfig("pinned", "sleep", "1000")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{CpusetCpus: "0", CpusetMems: "0"}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	if got := readCgroupFile(t, cg, "cpuset", "cpuset.cpus"); got != "0" {
		t.Errorf("cpuset.cpus = %q, want 0", got)
	}
	// The container's process is in the cgroup husk reports.
	pid := ctrPid(t, h, id)
	procs := readCgroupFile(t, cg, "cpuset", "cgroup.procs")
	if !strings.Contains("\n"+procs+"\n", "\n"+strconv.Itoa(pid)+"\n") {
		t.Errorf("pid %d not in %s: %q", pid, cg, procs)
	}
}

// systemctl runs systemctl and returns its trimmed output.
func systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := exec.Command("systemctl", args...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// With cgroup_driver = "systemd", pods and containers are transient
// scopes, cri-husk-<id>.scope, in the slice kubelet names; systemd creates
// and removes them, and RuntimeConfig tells kubelet the driver. Runs only
// where systemd is the init (the cgroup v2 VM).
func TestSystemdCgroupDriver(t *testing.T) {
	if !systemd.IsRunningSystemd() {
		t.Skip("systemd is not the init system here (runs in make test-cgroupv2)")
	}
	// The pods' default slice, the test's own. systemd made it with the
	// first scope in it; huskd leaves slices to systemd (kubelet's are
	// kubelet's), so the test stops it, after huskd's cleanup (cleanups
	// run last first) has checked that no scope is left.
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	slice := "husktest" + hex.EncodeToString(b) + ".slice"
	t.Cleanup(func() {
		systemctl(t, "stop", slice)
		huskdtest.Eventually(t, 10*time.Second, slice+" is removed", func() bool {
			_, err := os.Stat(filepath.Join("/sys/fs/cgroup", slice))
			return os.IsNotExist(err)
		})
	})
	h, _ := ctrHuskd(t, "[runtime]\ncgroup_driver = \"systemd\"\ncgroup_parent = \""+slice+"\"\n")
	h.DefaultCgroupParent = "" // a slice: not huskd's to remove
	ctx := context.Background()
	rc, err := h.Runtime.RuntimeConfig(ctx)
	if err != nil || rc.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_SYSTEMD {
		t.Fatalf("RuntimeConfig = %v, %v; want SYSTEMD", rc, err)
	}

	// A cgroupfs path is not a slice: refused by name, nothing made.
	bad := huskdtest.PodConfig("bad-parent")
	bad.Linux.CgroupParent = "/kubepods/besteffort"
	if _, err := h.Runtime.RunPodSandbox(ctx, bad, ""); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cgroup_parent") {
		t.Errorf("RunPodSandbox with a cgroupfs parent under the systemd driver: %v, want InvalidArgument naming cgroup_parent", err)
	}

	pod, podCfg := podWithLogs(t, h, "systemd", nil) // in the default slice
	podCg := podCgroup(t, h, pod)
	podScope := "cri-husk-" + pod + ".scope"
	if want := "/" + slice + "/" + podScope; podCg != want {
		t.Errorf("pod cgroup %s, want %s", podCg, want)
	}
	if got := systemctl(t, "show", "-P", "ActiveState", podScope); got != "active" {
		t.Errorf("%s is %q, want active", podScope, got)
	}

	cfg := ctrConfig("limited", "sleep", "1000")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 200000}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	scope := "cri-husk-" + id + ".scope"
	if want := "/" + slice + "/" + scope; cg != want {
		t.Errorf("container cgroup %s, want %s", cg, want)
	}
	if got := systemctl(t, "show", "-P", "ControlGroup", scope); got != cg {
		t.Errorf("systemd puts %s in %q, husk reports %s", scope, got, cg)
	}
	checkLimits(t, cg, limitFiles(128<<20, 512, 200000, 100000))
	upd := &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000}
	if err := h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: upd}); err != nil {
		t.Fatal(err)
	}
	checkLimits(t, cg, limitFiles(64<<20, 256, 50000, 100000))
	// systemd keeps the limit too: a daemon-reload must not undo it.
	if got := systemctl(t, "show", "-P", "MemoryMax", scope); got != strconv.Itoa(64<<20) {
		t.Errorf("systemd's MemoryMax of %s = %q, want %d", scope, got, 64<<20)
	}
	st, err := h.Runtime.ContainerStats(ctx, id)
	if err != nil || st.GetMemory().GetWorkingSetBytes().GetValue() == 0 || st.GetCpu().GetUsageCoreNanoSeconds() == nil {
		t.Errorf("ContainerStats under the systemd driver: %v, %v", st, err)
	}

	// huskd killed and started again finds the pod and its container in
	// their scopes, running, and goes on managing them.
	h.Kill()
	h.Launch()
	if s := ctrStatus(t, h, id); s.GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after huskd's restart the container is %v", s.GetState())
	}
	if got := ctrCgroup(t, h, id); got != cg {
		t.Errorf("after huskd's restart the container's cgroup is %s, was %s", got, cg)
	}
	if got := systemctl(t, "show", "-P", "ActiveState", scope); got != "active" {
		t.Errorf("after huskd's restart %s is %q", scope, got)
	}

	// Stopped and removed: the scopes are gone, from systemd and the
	// hierarchy.
	if err := h.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	gone := func(unit, cg string) func() bool {
		return func() bool {
			_, err := os.Stat(filepath.Join("/sys/fs/cgroup", cg))
			return os.IsNotExist(err) && systemctl(t, "show", "-P", "ActiveState", unit) == "inactive"
		}
	}
	huskdtest.Eventually(t, 10*time.Second, scope+" is gone", gone(scope, cg))
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 10*time.Second, podScope+" is gone", gone(podScope, podCg))
}
