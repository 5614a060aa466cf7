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

	// Named no parent: the pod gets a slice of its own in the default
	// slice, limited to its resources plus overhead, its scopes in it.
	pod, podCfg := podWithLogs(t, h, "systemd", func(c *runtime.PodSandboxConfig) {
		c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 256 << 20}
		c.Linux.Overhead = &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20}
	})
	podCg := podCgroup(t, h, pod)
	podScope := "cri-husk-" + pod + ".scope"
	podSlice := strings.TrimSuffix(slice, ".slice") + "-pod" + pod + ".slice"
	if want := "/" + slice + "/" + podSlice + "/" + podScope; podCg != want {
		t.Errorf("pod cgroup %s, want %s", podCg, want)
	}
	if _, _, own := podConfigResources(t, h, pod); own != "/"+slice+"/"+podSlice {
		t.Errorf("pod's own cgroup %s, want /%s/%s", own, slice, podSlice)
	}
	if got := systemctl(t, "show", "-P", "ActiveState", podSlice); got != "active" {
		t.Errorf("%s is %q, want active", podSlice, got)
	}
	if got := readCgroupFile(t, "/"+slice+"/"+podSlice, "memory", "memory.max"); got != strconv.Itoa(257<<20) {
		t.Errorf("%s memory.max = %s, want %d", podSlice, got, 257<<20)
	}
	if got := systemctl(t, "show", "-P", "ActiveState", podScope); got != "active" {
		t.Errorf("%s is %q, want active", podScope, got)
	}

	cfg := ctrConfig("limited", "sleep", "1000")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 200000}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	scope := "cri-husk-" + id + ".scope"
	if want := "/" + slice + "/" + podSlice + "/" + scope; cg != want {
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
	huskdtest.Eventually(t, 10*time.Second, podSlice+" is gone", gone(podSlice, "/"+slice+"/"+podSlice))
}

// memoryUsage is what the cgroup at cg is charged for, in bytes.
func memoryUsage(t *testing.T, cg string) int64 {
	t.Helper()
	f := "memory.usage_in_bytes"
	if cgroups.IsCgroup2UnifiedMode() {
		f = "memory.current"
	}
	n, err := strconv.ParseInt(readCgroupFile(t, cg, "memory", f), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// podConfigResources is the verbose config's pod-level resources and
// overhead: what husk recorded.
func podConfigResources(t *testing.T, h *huskdtest.Huskd, id string) (res, overhead *runtime.LinuxContainerResources, podCg string) {
	t.Helper()
	resp, err := h.Runtime.PodSandboxStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		PodCgroupPath string          `json:"podCgroupPath"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatal(err)
	}
	// The config is the protobuf struct marshalled by encoding/json.
	var cfg runtime.PodSandboxConfig
	if err := json.Unmarshal(info.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.GetLinux().GetResources(), cfg.GetLinux().GetOverhead(), info.PodCgroupPath
}

// A pod that names no cgroup_parent gets a cgroup of its own in huskd's
// default parent, with its pause's and containers' in it, limited to its
// resources plus its overhead; UpdatePodSandboxResources changes those
// limits in place and PodSandboxStatus's verbose config shows the new
// values. An update the kernel refuses (v1: a memory limit below what the
// pod's tmpfs holds, EBUSY) fails and leaves every old limit; a bad value
// is refused by name before anything is touched. A resize of the
// container the kernel refuses fails the same way.
func TestPodSandboxResources(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	res := &runtime.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20}
	overhead := &runtime.LinuxContainerResources{CpuShares: 10, CpuQuota: 10000, CpuPeriod: 100000, MemoryLimitInBytes: 8 << 20}
	pod, podCfg := podWithLogs(t, h, "podres", func(c *runtime.PodSandboxConfig) {
		c.Linux.Resources, c.Linux.Overhead = res, overhead
	})
	_, _, podCg := podConfigResources(t, h, pod)
	if want := filepath.Join(h.DefaultCgroupParent, "pod"+pod); podCg != want {
		t.Fatalf("pod cgroup %q, want %q", podCg, want)
	}
	if pause := podCgroup(t, h, pod); filepath.Dir(pause) != podCg {
		t.Errorf("the pause's cgroup %s is not in the pod's %s", pause, podCg)
	}
	checkLimits(t, podCg, limitFiles(72<<20, 522, 60000, 100000))

	// A container fills the pod's /dev/shm: tmpfs pages, which without
	// swap no reclaim can take back.
	id := runCtr(t, h, pod, podCfg, ctrConfig("filler", "sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 && sleep 1000"))
	if cg := ctrCgroup(t, h, id); filepath.Dir(cg) != podCg {
		t.Errorf("the container's cgroup %s is not in the pod's %s", cg, podCg)
	}
	huskdtest.Eventually(t, 20*time.Second, "the pod's tmpfs holds 32 MiB", func() bool { return memoryUsage(t, podCg) >= 32<<20 })

	res2 := &runtime.LinuxContainerResources{CpuShares: 1024, CpuQuota: 100000, CpuPeriod: 100000, MemoryLimitInBytes: 128 << 20}
	if _, err := h.Raw.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: res2, Overhead: overhead}); err != nil {
		t.Fatal(err)
	}
	grown := limitFiles(136<<20, 1034, 110000, 100000)
	checkLimits(t, podCg, grown)
	if r, o, _ := podConfigResources(t, h, pod); r.GetMemoryLimitInBytes() != 128<<20 || r.GetCpuQuota() != 100000 || o.GetMemoryLimitInBytes() != 8<<20 {
		t.Errorf("PodSandboxStatus's config after the update: resources %v, overhead %v", r, o)
	}

	// Refused before anything is touched: a negative value, an unknown pod.
	bad := &runtime.LinuxContainerResources{MemoryLimitInBytes: -1}
	_, err := h.Raw.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: bad})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "resources.memory_limit_in_bytes") {
		t.Errorf("negative memory: %v, want InvalidArgument naming resources.memory_limit_in_bytes", err)
	}
	_, err = h.Raw.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: strings.Repeat("0", 64), Resources: res2})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown pod: %v, want NotFound", err)
	}
	checkLimits(t, podCg, grown)

	if cgroups.IsCgroup2UnifiedMode() {
		// v2 takes a memory.max below usage and OOM-kills instead of
		// refusing (kubelet refuses such decreases itself).
		t.Log("cgroup v2: the refused-update part runs on v1 only")
		return
	}
	// 16 MiB is valid but below the 32 MiB the pod holds: the kernel
	// refuses it, and the CPU limits of the same update are not left
	// behind.
	shrink := &runtime.LinuxContainerResources{CpuShares: 256, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 16 << 20}
	_, err = h.Raw.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: shrink, Overhead: overhead})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "old") {
		t.Errorf("memory below usage: %v (%s), want FailedPrecondition saying the old limits stay", err, status.Code(err))
	}
	t.Logf("refused: %v", err)
	checkLimits(t, podCg, grown)
	if r, _, _ := podConfigResources(t, h, pod); r.GetMemoryLimitInBytes() != 128<<20 {
		t.Errorf("a refused update was recorded: %v", r)
	}
	// Refused halfway: a container given a 50 ms quota, the pod cut to
	// 20 ms (v1 refuses a parent's quota below a child's) with a memory
	// limit it can have, which is written first and must be written back.
	if err := h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000}}); err != nil {
		t.Fatal(err)
	}
	half := &runtime.LinuxContainerResources{CpuShares: 1024, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 48 << 20}
	_, err = h.Raw.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod, Resources: half})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cpu.cfs_quota_us") {
		t.Errorf("pod quota below its container's: %v (%s), want FailedPrecondition naming cpu.cfs_quota_us", err, status.Code(err))
	}
	checkLimits(t, podCg, grown)
	if err := h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1}}); err != nil {
		t.Fatal(err)
	}

	// The container's own resizes the kernel refuses fail the same way,
	// with the kernel's reason, and change nothing: memory below what it
	// uses; and memory it can have with a CPU quota above its pod's (v1
	// refuses a child's quota above its parent's), whose memory part
	// libcontainer writes first and must write back.
	ctrCg := ctrCgroup(t, h, id)
	before := limitFiles(0, 0, 0, 0)
	for f := range before {
		before[f] = readCgroupFile(t, ctrCg, f[0], f[1])
	}
	for _, c := range []struct {
		name string
		res  *runtime.LinuxContainerResources
		why  string
	}{
		{"memory below usage", &runtime.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}, "unable to set memory limit"},
		{"quota above the pod's", &runtime.LinuxContainerResources{MemoryLimitInBytes: 48 << 20, CpuPeriod: 100000, CpuQuota: 200000}, "cpu.cfs_quota_us"},
	} {
		err = h.Runtime.UpdateContainerResources(ctx, id, &runtime.ContainerResources{Linux: c.res})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), c.why) {
			t.Errorf("UpdateContainerResources, %s: %v (%s), want FailedPrecondition with %q", c.name, err, status.Code(err), c.why)
		}
		t.Logf("container resize refused, %s: %v", c.name, err)
		checkLimits(t, ctrCg, before)
		if r := ctrStatus(t, h, id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 0 || r.GetCpuQuota() != -1 {
			t.Errorf("ContainerStatus shows a refused resize: %v", r)
		}
	}
}

// `crictl update`, as a node admin resizes a running container: the new
// limits show in its cgroup and in ContainerStatus; a value below the
// least a container starts with is refused by name and changes nothing.
func TestCrictlUpdate(t *testing.T) {
	if os.Getenv("HUSK_CRICTL") == "" {
		t.Skip("HUSK_CRICTL is not set: run through `make test`, which builds crictl")
	}
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "crictl-update", nil)
	cfg := ctrConfig("resized", "sleep", "1000")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 200000}
	id := runCtr(t, h, pod, podCfg, cfg)
	cg := ctrCgroup(t, h, id)
	crictl(t, h, "update", "--memory", strconv.Itoa(64<<20), "--cpu-share", "256", "--cpu-period", "100000", "--cpu-quota", "50000", id)
	checkLimits(t, cg, limitFiles(64<<20, 256, 50000, 100000))
	r := ctrStatus(t, h, id).GetResources().GetLinux()
	if r.GetMemoryLimitInBytes() != 64<<20 || r.GetCpuShares() != 256 || r.GetCpuQuota() != 50000 {
		t.Errorf("ContainerStatus.resources after crictl update: %v", r)
	}
	out, err := crictlCmd(t, h, "update", "--memory", "1024", id).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "memory_limit_in_bytes") {
		t.Errorf("crictl update --memory 1024: %v\n%s", err, out)
	}
	checkLimits(t, cg, limitFiles(64<<20, 256, 50000, 100000))
}
