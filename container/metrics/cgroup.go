package metrics

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"github.com/opencontainers/cgroups/fscommon"
)

// cgroupSource reads the counters of one container's cgroup.
type cgroupSource struct {
	m  cgroups.Manager
	v2 bool
}

// openCgroup builds a manager for the cgroupfs path p as sandbox does
// (fs on v1, fs2 on v2); it reads nothing yet.
func openCgroup(p string) (*cgroupSource, error) {
	cg := &cgroups.Cgroup{Path: p, Resources: &cgroups.Resources{}}
	if cgroups.IsCgroup2UnifiedMode() {
		m, err := fs2.NewManager(cg, path.Join("/sys/fs/cgroup", p))
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		return &cgroupSource{m: m, v2: true}, nil
	}
	m, err := cgroupsv1.NewManager(cg, nil)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return &cgroupSource{m: m}, nil
}

func (c *cgroupSource) metrics(e *emitter) {
	c.cpu(e)
	c.memory(e)
	c.pids(e)
	c.io(e)
	c.hugetlb(e)
	c.processes(e)
}

// file is the path of a v1 controller's file, or of its v2 counterpart in
// the unified directory; "" when the v1 controller is not mounted.
func (c *cgroupSource) file(subsys, v1, v2 string) string {
	if c.v2 {
		return filepath.Join(c.m.Path(""), v2)
	}
	dir := c.m.Path(subsys)
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, v1)
}

// read reads one controller's stats and says which of the proof files
// existed both before and after. Only the parts so proven are to be
// trusted: the v1 manager reads a missing file as zeros, whether the
// controller is not mounted or the cgroup went away during the read.
func (c *cgroupSource) read(ctrl cgroups.Controller, proofs ...string) (*cgroups.Stats, []bool) {
	present := existing(proofs)
	if !slices.Contains(present, true) {
		return nil, nil
	}
	st, err := c.m.Stats(&cgroups.StatsOptions{Controllers: ctrl})
	if err != nil {
		return nil, nil
	}
	for i, ok := range existing(proofs) {
		present[i] = present[i] && ok
	}
	return st, present
}

func existing(paths []string) []bool {
	out := make([]bool, len(paths))
	for i, p := range paths {
		out[i] = p != "" && cgroups.PathExists(p)
	}
	return out
}

// cpu reads usage (cpuacct on v1) and CFS throttling (the cpu controller
// on v1; on v2 cpu.stat has it only where cpu.max shows the controller).
func (c *cgroupSource) cpu(e *emitter) {
	st, ok := c.read(cgroups.CPU,
		c.file("cpuacct", "cpuacct.usage", "cpu.stat"),
		c.file("cpu", "cpu.stat", "cpu.max"))
	if st == nil {
		return
	}
	if ok[0] {
		u := st.CpuStats.CpuUsage
		e.add(cpuUsage, nanosToSeconds(u.TotalUsage))
		e.add(cpuUser, nanosToSeconds(u.UsageInUsermode))
		e.add(cpuSystem, nanosToSeconds(u.UsageInKernelmode))
	}
	if ok[1] {
		t := st.CpuStats.ThrottlingData
		e.add(cfsPeriods, t.Periods)
		e.add(cfsThrottledPeriods, t.ThrottledPeriods)
		e.add(cfsThrottledSeconds, nanosToSeconds(t.ThrottledTime))
	}
	pressure(e, st.CpuStats.PSI, cpuWaiting, cpuStalled)
}

// pressure reports PSI totals (microseconds): "some" is time at least one
// task waited, "full" time all did, cadvisor's waiting and stalled.
func pressure(e *emitter, psi *cgroups.PSIStats, waiting, stalled *family) {
	if psi == nil {
		return
	}
	e.add(waiting, microsToSeconds(psi.Some.Total))
	e.add(stalled, microsToSeconds(psi.Full.Total))
}

func (c *cgroupSource) pids(e *emitter) {
	st, ok := c.read(cgroups.Pids, c.file("pids", "pids.current", "pids.current"))
	if st == nil || !ok[0] {
		return
	}
	// The manager reports "max" as 0, which is cadvisor's "unlimited".
	e.add(threadsMax, st.PidsStats.Limit)
}

// io reports block I/O per device. v1's blkio proves itself only by its
// directory, hence cgroup.procs.
func (c *cgroupSource) io(e *emitter) {
	st, ok := c.read(cgroups.IO, c.file("blkio", "cgroup.procs", "io.stat"))
	if st == nil || !ok[0] {
		return
	}
	blockIO(e, &st.BlkioStats, make(deviceNames))
}

// blockIO reports bytes per device and operation (Read, Write, Sync,
// Async, Discard, Total as the kernel names them), and reads and writes
// per device, in bytes and in operations.
func blockIO(e *emitter, st *cgroups.BlkioStats, names deviceNames) {
	for _, s := range st.IoServiceBytesRecursive {
		dev := names.get(s.Major, s.Minor)
		e.add(blkioDeviceUsage, s.Value, dev, strconv.FormatUint(s.Major, 10), strconv.FormatUint(s.Minor, 10), s.Op)
		addByOp(e, s, dev, fsReadsBytes, fsWritesBytes)
	}
	for _, s := range st.IoServicedRecursive {
		addByOp(e, s, names.get(s.Major, s.Minor), fsReads, fsWrites)
	}
	pressure(e, st.PSI, ioWaiting, ioStalled)
}

func addByOp(e *emitter, s cgroups.BlkioStatEntry, dev string, read, write *family) {
	switch strings.ToLower(s.Op) {
	case "read":
		e.add(read, s.Value, dev)
	case "write":
		e.add(write, s.Value, dev)
	}
}

// hugetlb reports huge page use per page size; v2 keeps no maximum.
func (c *cgroupSource) hugetlb(e *emitter) {
	st, ok := c.read(cgroups.HugeTLB, c.file("hugetlb", "cgroup.procs", "cgroup.procs"))
	if st == nil || !ok[0] {
		return
	}
	for _, size := range slices.Sorted(maps.Keys(st.HugetlbStats)) {
		h := st.HugetlbStats[size]
		e.add(hugetlbUsage, h.Usage, size)
		if !c.v2 {
			e.add(hugetlbMaxUsage, h.MaxUsage, size)
		}
	}
}

// readKeyValues reads a flat-keyed cgroup file ("key value" lines, as
// memory.events or memory.oom_control), skipping lines that are not.
func readKeyValues(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]uint64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return out, nil
}

// readLimit reads a cgroup limit file, "max" or a v1 page-rounded huge
// number being no limit.
func readLimit(dir, file string) (limit uint64, unlimited bool, err error) {
	v, err := fscommon.GetCgroupParamUint(dir, file)
	if err != nil {
		return 0, false, err
	}
	return v, v >= memoryUnlimited, nil
}

// memoryUnlimited is where a memory limit stops being one: v1 reports "no
// limit" as a page-rounded huge number, v2 as "max"; cadvisor and
// containerd use the same bound.
const memoryUnlimited = uint64(1) << 62
