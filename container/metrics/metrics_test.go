package metrics

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container/usage"
)

// critestExpected is expectedMetricDescriptorNames, copied from
// sigs.k8s.io/cri-tools@v1.37.0/pkg/validate/pod.go: the metrics kubelet
// gets from cadvisor, which critest's "runtime should support ... metrics"
// tests ask of a runtime.
var critestExpected = []string{
	"container_blkio_device_usage_total",
	"container_cpu_cfs_periods_total",
	"container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total",
	"container_cpu_system_seconds_total",
	"container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total",
	"container_file_descriptors",
	"container_fs_inodes_free",
	"container_fs_inodes_total",
	"container_fs_limit_bytes",
	"container_fs_reads_bytes_total",
	"container_fs_reads_total",
	"container_fs_usage_bytes",
	"container_fs_writes_bytes_total",
	"container_fs_writes_total",
	"container_hugetlb_max_usage_bytes",
	"container_hugetlb_usage_bytes",
	"container_last_seen",
	"container_memory_cache",
	"container_memory_failcnt",
	"container_memory_failures_total",
	"container_memory_kernel_usage",
	"container_memory_mapped_file",
	"container_memory_max_usage_bytes",
	"container_memory_rss",
	"container_memory_swap",
	"container_memory_usage_bytes",
	"container_memory_working_set_bytes",
	"container_network_receive_bytes_total",
	"container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total",
	"container_network_receive_packets_total",
	"container_network_transmit_bytes_total",
	"container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total",
	"container_network_transmit_packets_total",
	"container_oom_events_total",
	"container_pressure_cpu_stalled_seconds_total",
	"container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total",
	"container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total",
	"container_pressure_memory_waiting_seconds_total",
	"container_processes",
	"container_sockets",
	"container_spec_cpu_period",
	"container_spec_cpu_quota",
	"container_spec_cpu_shares",
	"container_spec_memory_limit_bytes",
	"container_spec_memory_reservation_limit_bytes",
	"container_spec_memory_swap_limit_bytes",
	"container_start_time_seconds",
	"container_threads",
	"container_threads_max",
	"container_ulimits_soft",
}

// critestUnimplemented is unimplementedMetricDescriptors from the same
// file: names critest lets a runtime leave out.
var critestUnimplemented = []string{
	"container_hugetlb_max_usage_bytes",
	"container_hugetlb_usage_bytes",
	"container_pressure_cpu_stalled_seconds_total",
	"container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total",
	"container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total",
	"container_pressure_memory_waiting_seconds_total",
	"container_spec_cpu_quota",
	"container_spec_memory_reservation_limit_bytes",
	"container_ulimits_soft",
}

// critestOptionalValues is optionalValuesForMetricDescriptors from the
// same file: described, but values may be missing (no block I/O
// accounting).
var critestOptionalValues = []string{
	"container_blkio_device_usage_total",
	"container_fs_reads_bytes_total",
	"container_fs_reads_total",
	"container_fs_writes_bytes_total",
	"container_fs_writes_total",
}

func descriptorsByName(t *testing.T) map[string]*runtime.MetricDescriptor {
	t.Helper()
	out := make(map[string]*runtime.MetricDescriptor)
	for _, d := range Descriptors() {
		if _, dup := out[d.Name]; dup {
			t.Errorf("descriptor %s listed twice", d.Name)
		}
		out[d.Name] = d
	}
	return out
}

func TestDescriptorsCoverCritest(t *testing.T) {
	descs := descriptorsByName(t)
	for _, name := range critestExpected {
		t.Run(name, func(t *testing.T) {
			d, ok := descs[name]
			switch {
			case !ok && slices.Contains(critestUnimplemented, name):
				t.Skip("critest lets runtimes leave it out")
			case !ok:
				t.Fatal("not described")
			case d.Help == "":
				t.Error("no help")
			case len(d.LabelKeys) == 0:
				t.Error("no label keys")
			}
		})
	}
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// TestDescriptorsWellFormed checks what kubelet needs to turn descriptors
// into Prometheus descriptions: valid, distinct label names.
func TestDescriptorsWellFormed(t *testing.T) {
	for _, d := range Descriptors() {
		if !strings.HasPrefix(d.Name, "container_") {
			t.Errorf("%s: not a container_ metric", d.Name)
		}
		if !slices.Equal(d.LabelKeys[:len(baseLabels)], baseLabels) {
			t.Errorf("%s: label keys %v do not start with %v", d.Name, d.LabelKeys, baseLabels)
		}
		seen := map[string]bool{}
		for _, k := range d.LabelKeys {
			if !labelName.MatchString(k) || seen[k] {
				t.Errorf("%s: bad or repeated label key %q", d.Name, k)
			}
			seen[k] = true
		}
	}
	// Callers may change what they get; the next call must not see it.
	Descriptors()[0].LabelKeys[0] = "changed"
	if Descriptors()[0].LabelKeys[0] != baseLabels[0] {
		t.Error("Descriptors shares its label keys between calls")
	}
}

// checkMetrics checks what critest and kubelet check of a pod's metrics:
// each is described, has as many label values as its descriptor has keys,
// carries the pod's and container's identity, and no series comes twice
// (kubelet's Prometheus registry would refuse the scrape). It returns
// the metrics by name.
func checkMetrics(t *testing.T, pod Pod, pm *runtime.PodSandboxMetrics) map[string][]*runtime.Metric {
	t.Helper()
	descs := descriptorsByName(t)
	byName := make(map[string][]*runtime.Metric)
	series := make(map[string]bool)
	check := func(m *runtime.Metric, base []string) {
		d, ok := descs[m.Name]
		if !ok {
			t.Errorf("%s: not described", m.Name)
			return
		}
		if len(m.LabelValues) != len(d.LabelKeys) {
			t.Errorf("%s: %d label values %q for %d keys %q", m.Name, len(m.LabelValues), m.LabelValues, len(d.LabelKeys), d.LabelKeys)
			return
		}
		if !slices.Equal(m.LabelValues[:len(base)], base) {
			t.Errorf("%s: base label values %q, want %q", m.Name, m.LabelValues[:len(base)], base)
		}
		key := m.Name + "\x00" + strings.Join(m.LabelValues, "\x00")
		if series[key] {
			t.Errorf("%s%q: reported twice", m.Name, m.LabelValues)
		}
		series[key] = true
		if m.Value == nil {
			t.Errorf("%s: no value", m.Name)
		}
		byName[m.Name] = append(byName[m.Name], m)
	}
	if pm.PodSandboxId != pod.ID {
		t.Errorf("pod sandbox ID %q, want %q", pm.PodSandboxId, pod.ID)
	}
	for _, m := range pm.Metrics {
		check(m, []string{pod.Name, pod.Namespace, "", pod.ID, ""})
	}
	if len(pm.ContainerMetrics) != len(pod.Containers) {
		t.Fatalf("%d container metrics for %d containers", len(pm.ContainerMetrics), len(pod.Containers))
	}
	for i, cm := range pm.ContainerMetrics {
		c := pod.Containers[i]
		if cm.ContainerId != c.ID {
			t.Errorf("container metrics %d for %q, want %q", i, cm.ContainerId, c.ID)
		}
		for _, m := range cm.Metrics {
			check(m, []string{pod.Name, pod.Namespace, c.Name, c.ID, c.Image})
		}
	}
	return byName
}

func value(t *testing.T, byName map[string][]*runtime.Metric, name string) uint64 {
	t.Helper()
	ms := byName[name]
	if len(ms) != 1 {
		t.Fatalf("%d values of %s, want 1", len(ms), name)
	}
	return ms[0].Value.Value
}

// critestResources are the resources critest's metrics container asks for.
func critestResources() *runtime.LinuxContainerResources {
	return &runtime.LinuxContainerResources{
		CpuPeriod:              100000,
		CpuQuota:               20000,
		CpuShares:              1024,
		MemoryLimitInBytes:     64 << 20,
		MemorySwapLimitInBytes: 64 << 20,
	}
}

// writeLayer fills a fake writable layer: 10 files of 3 bytes, one of them
// hard-linked twice more, and a directory.
func writeLayer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sub := filepath.Join(dir, "var", "lib", "mydisktest")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(sub, "f"+string(rune('0'+i))), []byte("hi\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"link1", "link2"} {
		if err := os.Link(filepath.Join(sub, "f0"), filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestPodMetricsWithoutCgroup covers a container whose cgroup is gone: it
// gets what is known without it, consistently labelled, and no zeros for
// what could not be read.
func TestPodMetricsWithoutCgroup(t *testing.T) {
	now := time.Unix(1700000000, 5)
	started := now.Add(-time.Minute)
	pod := Pod{
		ID: "pod-id", Name: "web", Namespace: "default",
		NetPID: os.Getpid(),
		Containers: []Container{{
			ID: "ctr-id", Name: "app", Image: "docker.io/library/busybox:1.36",
			CgroupPath: "/" + uniqueName("husk-metrics-absent-") + "/ctr",
			UpperDir:   writeLayer(t),
			StartedAt:  started,
			Resources:  critestResources(),
		}},
	}
	byName := checkMetrics(t, pod, PodMetrics(pod, now))

	want := map[string]uint64{
		"container_last_seen":                    uint64(now.Unix()),
		"container_start_time_seconds":           uint64(started.Unix()),
		"container_spec_cpu_period":              100000,
		"container_spec_cpu_quota":               20000,
		"container_spec_cpu_shares":              1024,
		"container_spec_memory_limit_bytes":      64 << 20,
		"container_spec_memory_swap_limit_bytes": 64 << 20,
		"container_fs_usage_bytes":               30, // the hard links once
	}
	for name, v := range want {
		if got := value(t, byName, name); got != v {
			t.Errorf("%s = %d, want %d", name, got, v)
		}
	}
	for _, name := range []string{"container_fs_limit_bytes", "container_fs_inodes_total", "container_network_receive_bytes_total"} {
		if len(byName[name]) == 0 {
			t.Errorf("no %s", name)
		}
	}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_processes", "container_threads_max", "container_oom_events_total"} {
		if len(byName[name]) != 0 {
			t.Errorf("%s reported for a container without a cgroup", name)
		}
	}
	for _, m := range byName["container_last_seen"] {
		if m.Timestamp != now.UnixNano() || m.MetricType != runtime.MetricType_GAUGE {
			t.Errorf("container_last_seen: timestamp %d, type %v", m.Timestamp, m.MetricType)
		}
	}
}

func TestPodMetricsBare(t *testing.T) {
	// No network, no cgroup, no layer, no resources, not started.
	pod := Pod{ID: "p", Containers: []Container{{ID: "c"}}}
	byName := checkMetrics(t, pod, PodMetrics(pod, time.Now()))
	if len(byName) != 1 || len(byName["container_last_seen"]) != 1 {
		t.Errorf("metrics %v, want container_last_seen alone", slices.Sorted(maps.Keys(byName)))
	}
}

func TestEmitterDropsMislabelled(t *testing.T) {
	e := newEmitter(1, "p", "ns", "c", "id", "img")
	e.add(memFailures, 1, "pgfault") // one of two extra labels
	e.add(cpuUsage, 1, "extra")
	e.add(netRxBytes, 1, "eth0")
	if len(e.out) != 1 || e.out[0].Name != netRxBytes.name {
		t.Errorf("kept %v, want only %s", e.out, netRxBytes.name)
	}
}

func TestPodInterfaces(t *testing.T) {
	lo, eth0, net1 := usage.NetDev{Name: "lo"}, usage.NetDev{Name: "eth0"}, usage.NetDev{Name: "net1"}
	cases := []struct{ in, want []usage.NetDev }{
		{[]usage.NetDev{lo, eth0, net1}, []usage.NetDev{eth0, net1}},
		{[]usage.NetDev{lo}, []usage.NetDev{lo}}, // no pod network: lo is all there is
		{nil, nil},
	}
	for _, c := range cases {
		if got := podInterfaces(c.in); !slices.Equal(got, c.want) {
			t.Errorf("podInterfaces(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestNetworkMetricsLabels(t *testing.T) {
	e := newEmitter(1, "p", "ns", "", "pod-id", "")
	networkMetrics(e, os.Getpid())
	if len(e.out) == 0 || len(e.out)%8 != 0 {
		t.Fatalf("%d network metrics, want 8 per interface", len(e.out))
	}
	for _, m := range e.out {
		if len(m.LabelValues) != len(baseLabels)+1 || m.LabelValues[5] == "" {
			t.Errorf("%s%q: want the base labels and an interface", m.Name, m.LabelValues)
		}
	}
}

func TestMountSource(t *testing.T) {
	const mountinfo = `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 253:1 /var/lib /mnt/bind rw - ext4 /dev/vda1 rw
25 22 0:45 / /mnt/my\040disk rw shared:5 master:2 - tmpfs my\040tmpfs rw
`
	for id, want := range map[string]string{"253:1": "/dev/vda1", "0:45": "my tmpfs", "0:99": ""} {
		if got := mountSource(strings.NewReader(mountinfo), id); got != want {
			t.Errorf("mountSource(%s) = %q, want %q", id, got, want)
		}
	}
}

// TestBlockIO covers what this machine cannot produce: blk-throttle counts
// nothing unless a limit is set.
func TestBlockIO(t *testing.T) {
	st := &cgroups.BlkioStats{
		IoServiceBytesRecursive: []cgroups.BlkioStatEntry{
			{Major: 253, Minor: 0, Op: "Read", Value: 4096},
			{Major: 253, Minor: 0, Op: "Write", Value: 8192},
			{Major: 253, Minor: 0, Op: "Total", Value: 12288},
			{Major: 7, Minor: 3, Op: "Read", Value: 1},
		},
		IoServicedRecursive: []cgroups.BlkioStatEntry{
			{Major: 253, Minor: 0, Op: "Read", Value: 1},
			{Major: 253, Minor: 0, Op: "Write", Value: 2},
			{Major: 253, Minor: 0, Op: "Total", Value: 3},
		},
		PSI: &cgroups.PSIStats{Some: cgroups.PSIData{Total: 2_500_000}, Full: cgroups.PSIData{Total: 999_999}},
	}
	names := deviceNames{{253, 0}: "/dev/vda", {7, 3}: "7:3"}
	e := newEmitter(1, "p", "ns", "c", "id", "img")
	blockIO(e, st, names)
	pod := Pod{ID: "id", Name: "p", Namespace: "ns", Containers: []Container{{ID: "id", Name: "c", Image: "img"}}}
	byName := checkMetrics(t, pod, &runtime.PodSandboxMetrics{
		PodSandboxId:     "id",
		ContainerMetrics: []*runtime.ContainerMetrics{{ContainerId: "id", Metrics: e.out}},
	})
	got := map[string]int{}
	for name, ms := range byName {
		got[name] = len(ms)
	}
	want := map[string]int{
		"container_blkio_device_usage_total":          4,
		"container_fs_reads_bytes_total":              2,
		"container_fs_writes_bytes_total":             1,
		"container_fs_reads_total":                    1,
		"container_fs_writes_total":                   1,
		"container_pressure_io_waiting_seconds_total": 1,
		"container_pressure_io_stalled_seconds_total": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("series per name %v, want %v", got, want)
	}
	if v := byName["container_blkio_device_usage_total"][1].LabelValues[5:]; !slices.Equal(v, []string{"/dev/vda", "253", "0", "Write"}) {
		t.Errorf("blkio labels %q", v)
	}
	if v := value(t, byName, "container_pressure_io_waiting_seconds_total"); v != 2 {
		t.Errorf("io waiting %d s, want 2 (whole seconds of 2.5)", v)
	}
}

func TestReadKeyValues(t *testing.T) {
	f := filepath.Join(t.TempDir(), "memory.events")
	if err := os.WriteFile(f, []byte("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\nbogus\nneg -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readKeyValues(f)
	if err != nil {
		t.Fatal(err)
	}
	if got["max"] != 7 || got["oom_kill"] != 1 || len(got) != 5 {
		t.Errorf("got %v", got)
	}
}

// TestPodMetricsRealCgroup puts a busy shell into a new cgroup in every
// hierarchy and checks that PodMetrics reports every metric critest wants
// values of, labelled as described.
func TestPodMetricsRealCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	cgPath, cg := testCgroup(t)
	cmd, release, out := startGated(t, `
		i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
		sleep 30 &
		echo ready
		wait`)
	if err := cg.m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	release()
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the busy shell said %q (%v)", line, err)
	}

	pod := Pod{
		ID: "pod-id", Name: "web", Namespace: "default", NetPID: os.Getpid(),
		Containers: []Container{{
			ID: "ctr-id", Name: "app", Image: "busybox",
			CgroupPath: cgPath,
			UpperDir:   writeLayer(t),
			StartedAt:  time.Now().Add(-time.Second),
			Resources:  critestResources(),
		}},
	}
	byName := checkMetrics(t, pod, PodMetrics(pod, time.Now()))
	for _, name := range critestExpected {
		if len(byName[name]) == 0 && !slices.Contains(critestUnimplemented, name) && !slices.Contains(critestOptionalValues, name) {
			t.Errorf("no value of %s", name)
		}
	}
	names := slices.Sorted(maps.Keys(byName))
	t.Logf("%d metrics: %v", len(names), names)

	procs := value(t, byName, "container_processes")
	if procs < 2 {
		t.Errorf("%d processes, want the shell and its sleep", procs)
	}
	if n := value(t, byName, "container_threads"); n < procs {
		t.Errorf("%d threads for %d processes", n, procs)
	}
	if n := value(t, byName, "container_file_descriptors"); n < 3*procs {
		t.Errorf("%d file descriptors for %d processes with stdio", n, procs)
	}
	if usage := value(t, byName, "container_memory_usage_bytes"); usage == 0 || value(t, byName, "container_memory_working_set_bytes") > usage {
		t.Errorf("memory usage %d, working set not within it", usage)
	}
	if n := len(byName["container_memory_failures_total"]); n != 4 {
		t.Errorf("%d container_memory_failures_total series, want 4", n)
	}

	// Once the cgroup is gone, what came from it goes too.
	removeCgroup(t, cg)
	byName = checkMetrics(t, pod, PodMetrics(pod, time.Now()))
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_processes", "container_threads_max"} {
		if len(byName[name]) != 0 {
			t.Errorf("%s reported for a removed cgroup", name)
		}
	}
	if len(byName["container_last_seen"]) != 1 {
		t.Error("no container_last_seen for a container whose cgroup is gone")
	}
}

// testCgroup creates /<unique>/pod/ctr in every hierarchy (every v1 one,
// and the unified one in hybrid mode) and returns its path and source.
// When the test ends, what is left in it is killed and /<unique> removed.
func testCgroup(t *testing.T) (string, *cgroupSource) {
	t.Helper()
	top := uniqueName("husk-metrics-test-")
	p := path.Join("/", top, "pod", "ctr")
	cg, err := openCgroup(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, cg) })
	if err := cg.m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	return p, cg
}

// removeCgroup kills what is left in the cgroup, then removes /<unique>
// from every hierarchy.
func removeCgroup(t *testing.T, cg *cgroupSource) {
	if dir := cg.procsDir(); dir != "" {
		killAll(t, dir)
	}
	for _, dir := range cg.m.GetPaths() {
		top := filepath.Dir(filepath.Dir(dir))
		if !strings.HasPrefix(filepath.Base(top), "husk-metrics-test-") {
			t.Errorf("not removing %s: not a test cgroup", top)
			continue
		}
		if err := cgroups.RemovePath(top); err != nil {
			t.Errorf("removing cgroup %s: %v", top, err)
		}
	}
}

func killAll(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := cgroups.GetAllPids(dir)
		if err != nil || len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cgroup %s still has processes %v", dir, pids)
			return
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startGated starts sh -c script held before its first command, so that
// it can be moved into a cgroup before it does anything; release lets it
// go. Its stdout is returned for it to say where it is.
func startGated(t *testing.T, script string) (cmd *exec.Cmd, release func(), stdout *bufio.Reader) {
	t.Helper()
	cmd = exec.Command("sh", "-c", "read _ || exit 1\n"+script)
	gate, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	release = func() {
		_, _ = io.WriteString(gate, "go\n")
		gate.Close()
	}
	return cmd, release, bufio.NewReader(out)
}

func TestDeviceNames(t *testing.T) {
	names := make(deviceNames)
	if got := names.get(0, 0); got != "0:0" {
		t.Errorf("no block device 0:0 named %q", got)
	}
	entries, err := os.ReadDir("/sys/dev/block")
	if err != nil || len(entries) == 0 {
		t.Skip("no block devices")
	}
	var major, minor uint64
	if _, err := fmt.Sscanf(entries[0].Name(), "%d:%d", &major, &minor); err != nil {
		t.Fatal(err)
	}
	if got := names.get(major, minor); !strings.HasPrefix(got, "/dev/") {
		t.Errorf("block device %s named %q, want /dev/...", entries[0].Name(), got)
	}
}
