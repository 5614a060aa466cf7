package container

import (
	"fmt"
	"os"
	"path"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"

	"github.com/huskrt/husk/container/usage"
)

// CgroupStats is what the CRI stats calls report about a cgroup.
type CgroupStats struct {
	CPUUsageNanos    uint64 // cumulative
	MemoryUsageBytes uint64
	// MemoryWorkingSetBytes is usage minus inactive file pages, as cadvisor
	// and containerd compute it: what kubelet evicts on.
	MemoryWorkingSetBytes       uint64
	MemoryRSSBytes              uint64
	PageFaults, MajorPageFaults uint64
	// MemoryAvailableBytes is the limit minus the working set when the
	// cgroup is limited, else 0.
	MemoryAvailableBytes uint64
	// OOMKills counts the processes the kernel killed for the cgroup's
	// limit: "oom_kill" of memory.oom_control (v1) or memory.events (v2).
	OOMKills uint64
}

// memoryUnlimited is where a limit stops being one: v1 reports "no limit"
// as a page-rounded huge number, v2 as "max". containerd and cadvisor use
// the same bound.
const memoryUnlimited = uint64(1) << 62

// The memory.stat keys each cgroup version names the counters by. v1's
// total_ ones include the cgroup's descendants, as v2's always do.
type memoryKeys struct{ inactiveFile, rss, pgfault, pgmajfault string }

var (
	memoryKeysV1 = memoryKeys{"total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"}
	memoryKeysV2 = memoryKeys{"inactive_file", "anon", "pgfault", "pgmajfault"}
)

// cgroupManager builds a manager for the cgroupfs path p, as
// sandbox.cgroupManager does (the package cannot be imported from here).
func cgroupManager(p string) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: p, Resources: &cgroups.Resources{}}
	if cgroups.IsCgroup2UnifiedMode() {
		return fs2.NewManager(cg, path.Join("/sys/fs/cgroup", p))
	}
	return cgroupsv1.NewManager(cg, nil)
}

// ReadCgroupStats reads the CPU and memory counters of the cgroup at path
// (cgroupfs form, e.g. /kubepods/pod1/<id>). A cgroup that does not exist
// is an error wrapping os.ErrNotExist.
func ReadCgroupStats(p string) (CgroupStats, error) {
	m, err := cgroupManager(p)
	if err != nil {
		return CgroupStats{}, fmt.Errorf("cgroup %s: %w", p, err)
	}
	if err := cgroupPresent(m, p); err != nil {
		return CgroupStats{}, err
	}
	st, err := m.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory})
	if err != nil {
		return CgroupStats{}, fmt.Errorf("reading stats of cgroup %s: %w", p, err)
	}
	ooms, err := m.OOMKillCount()
	if err != nil {
		return CgroupStats{}, fmt.Errorf("reading OOM kills of cgroup %s: %w", p, err)
	}
	// The v1 manager reads a missing stat file as zeros: a cgroup removed
	// while it was read must not look like an idle one.
	if err := cgroupPresent(m, p); err != nil {
		return CgroupStats{}, err
	}
	keys := memoryKeysV1
	if cgroups.IsCgroup2UnifiedMode() {
		keys = memoryKeysV2
	}
	out := fromLibStats(st, keys)
	out.OOMKills = ooms
	return out, nil
}

// cgroupPresent checks that the cgroup has a directory where its CPU or
// memory counters live.
func cgroupPresent(m cgroups.Manager, p string) error {
	var lastErr error
	for _, subsystem := range []string{"memory", "cpuacct"} {
		dir := m.Path(subsystem)
		if dir == "" {
			continue
		}
		_, err := os.Stat(dir)
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = os.ErrNotExist
	}
	return fmt.Errorf("cgroup %s: %w", p, lastErr)
}

func fromLibStats(st *cgroups.Stats, keys memoryKeys) CgroupStats {
	mem := st.MemoryStats
	used := mem.Usage.Usage
	ws := usage.WorkingSet(used, mem.Stats[keys.inactiveFile])
	return CgroupStats{
		CPUUsageNanos:         st.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes:      used,
		MemoryWorkingSetBytes: ws,
		MemoryRSSBytes:        mem.Stats[keys.rss],
		PageFaults:            mem.Stats[keys.pgfault],
		MajorPageFaults:       mem.Stats[keys.pgmajfault],
		MemoryAvailableBytes:  available(mem.Usage.Limit, ws),
	}
}

func available(limit, workingSet uint64) uint64 {
	if limit > memoryUnlimited || limit <= workingSet {
		return 0
	}
	return limit - workingSet
}

// ReadOOMKills reads only the cgroup's OOM kill counter: huskd reads it
// when a container exits, before its cgroup is removed, to report the
// OOMKilled reason.
func ReadOOMKills(p string) (uint64, error) {
	m, err := cgroupManager(p)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", p, err)
	}
	n, err := m.OOMKillCount()
	if err != nil {
		return 0, fmt.Errorf("reading OOM kills of cgroup %s: %w", p, err)
	}
	return n, nil
}
