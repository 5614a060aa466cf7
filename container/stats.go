package container

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"
	"sync"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"github.com/opencontainers/cgroups/fscommon"

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
//
// It reads the five files it reports from, where the cgroups library's
// Stats reads some twenty and resolves the cgroup's paths on every call
// (0.5 ms a cgroup here, 100 ms for a ListContainerStats of 200).
func ReadCgroupStats(p string) (CgroupStats, error) {
	dirs, err := accountingDirs(p)
	if err != nil {
		return CgroupStats{}, fmt.Errorf("cgroup %s: %w", p, err)
	}
	var st CgroupStats
	var memStat, ooms map[string]uint64
	var limit uint64
	if dirs.v2 {
		var cpu map[string]uint64
		if cpu, err = readKeyed(dirs.cpu, "cpu.stat"); err == nil {
			st.CPUUsageNanos = cpu["usage_usec"] * 1000
			st.MemoryUsageBytes, err = fscommon.GetCgroupParamUint(dirs.memory, "memory.current")
		}
		if err == nil {
			limit, err = fscommon.GetCgroupParamUint(dirs.memory, "memory.max")
		}
		if err == nil {
			ooms, err = readKeyed(dirs.memory, "memory.events")
		}
	} else {
		if st.CPUUsageNanos, err = fscommon.GetCgroupParamUint(dirs.cpu, "cpuacct.usage"); err == nil {
			st.MemoryUsageBytes, err = fscommon.GetCgroupParamUint(dirs.memory, "memory.usage_in_bytes")
		}
		if err == nil {
			limit, err = fscommon.GetCgroupParamUint(dirs.memory, "memory.limit_in_bytes")
		}
		if err == nil {
			ooms, err = readKeyed(dirs.memory, "memory.oom_control")
		}
	}
	if err == nil {
		memStat, err = readKeyed(dirs.memory, "memory.stat")
	}
	if err != nil {
		return CgroupStats{}, fmt.Errorf("reading stats of cgroup %s: %w", p, err)
	}
	keys := memoryKeysV1
	if dirs.v2 {
		keys = memoryKeysV2
	}
	ws := usage.WorkingSet(st.MemoryUsageBytes, memStat[keys.inactiveFile])
	st.MemoryWorkingSetBytes = ws
	st.MemoryRSSBytes = memStat[keys.rss]
	st.PageFaults = memStat[keys.pgfault]
	st.MajorPageFaults = memStat[keys.pgmajfault]
	st.MemoryAvailableBytes = available(limit, ws)
	st.OOMKills = ooms["oom_kill"]
	return st, nil
}

// cgroupDirs are where a cgroup's CPU and memory accounting files live:
// one directory on a v2 host, one per controller on a v1 or hybrid one.
type cgroupDirs struct {
	cpu, memory string
	v2          bool
}

// v1Mounts are the v1 hierarchies of cpuacct and memory, found once: the
// lookup parses mountinfo.
var v1Mounts = sync.OnceValues(func() (cgroupDirs, error) {
	cpu, err := cgroups.FindCgroupMountpoint("", "cpuacct")
	if err != nil {
		return cgroupDirs{}, err
	}
	mem, err := cgroups.FindCgroupMountpoint("", "memory")
	return cgroupDirs{cpu: cpu, memory: mem}, err
})

func accountingDirs(p string) (cgroupDirs, error) {
	if cgroups.IsCgroup2UnifiedMode() {
		d := path.Join("/sys/fs/cgroup", p)
		return cgroupDirs{cpu: d, memory: d, v2: true}, nil
	}
	m, err := v1Mounts()
	if err != nil {
		return cgroupDirs{}, err
	}
	return cgroupDirs{cpu: path.Join(m.cpu, p), memory: path.Join(m.memory, p)}, nil
}

func readKeyed(dir, file string) (map[string]uint64, error) {
	b, err := os.ReadFile(path.Join(dir, file))
	if err != nil {
		return nil, err
	}
	return parseKeyed(b), nil
}

// parseKeyed parses "key value" lines (memory.stat, cpu.stat,
// memory.events, memory.oom_control); lines that are not a key and an
// unsigned number are skipped.
func parseKeyed(b []byte) map[string]uint64 {
	out := make(map[string]uint64, 48)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64); err == nil {
			out[string(k)] = n
		}
	}
	return out
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
