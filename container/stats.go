package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
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
	usage := mem.Usage.Usage
	ws := workingSet(usage, mem.Stats[keys.inactiveFile])
	return CgroupStats{
		CPUUsageNanos:         st.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes:      usage,
		MemoryWorkingSetBytes: ws,
		MemoryRSSBytes:        mem.Stats[keys.rss],
		PageFaults:            mem.Stats[keys.pgfault],
		MajorPageFaults:       mem.Stats[keys.pgmajfault],
		MemoryAvailableBytes:  available(mem.Usage.Limit, ws),
	}
}

// workingSet is usage less the file pages the kernel would drop first; the
// two are read at different instants, hence the floor at zero.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
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

// DirUsage measures a container's writable layer as kubelet's stats want
// it: the apparent size of its regular files and the number of its inodes,
// each hard-linked inode once. It stays on dir's filesystem: a volume
// mounted inside the layer is not the container's disk use.
func DirUsage(dir string) (bytes, inodes uint64, err error) {
	root, err := os.Lstat(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	rootSt, ok := root.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("measuring %s: no stat_t", dir)
	}
	seen := make(map[uint64]struct{}) // inodes with more than one link
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return walkError(p, err)
		}
		st, err := lstatEntry(d)
		if err != nil || st == nil {
			return walkError(p, err)
		}
		if st.Dev != rootSt.Dev {
			return skipEntry(d)
		}
		if st.Nlink > 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if _, dup := seen[st.Ino]; dup {
				return nil
			}
			seen[st.Ino] = struct{}{}
		}
		inodes++
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			bytes += uint64(st.Size)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return bytes, inodes, nil
}

func lstatEntry(d fs.DirEntry) (*syscall.Stat_t, error) {
	fi, err := d.Info()
	if err != nil {
		return nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st, nil
}

// walkError lets a running container delete files under the walk: what
// vanished is simply not counted.
func walkError(p string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("%s: %w", p, err)
}

func skipEntry(d fs.DirEntry) error {
	if d.IsDir() {
		return filepath.SkipDir
	}
	return nil
}

// NetStats are one interface's counters, as /proc/net/dev has them.
type NetStats struct {
	Name              string
	RxBytes, RxErrors uint64
	TxBytes, TxErrors uint64
}

// ReadNetDev reads the interface counters of the network namespace pid is
// in, leaving out the loopback, which is not the pod's traffic.
func ReadNetDev(pid int) ([]NetStats, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("reading network counters: invalid pid %d", pid)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, fmt.Errorf("reading network counters of pid %d: %w", pid, err)
	}
	defer f.Close()
	stats, err := parseNetDev(f)
	if err != nil {
		return nil, fmt.Errorf("reading network counters of pid %d: %w", pid, err)
	}
	return stats, nil
}

// The columns of /proc/net/dev after "<name>:": eight receive counters,
// then eight transmit ones.
const (
	netDevRxBytes  = 0
	netDevRxErrors = 2
	netDevTxBytes  = 8
	netDevTxErrors = 10
	netDevColumns  = 16
)

func parseNetDev(r io.Reader) ([]NetStats, error) {
	var stats []NetStats
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if n <= 2 { // the two header lines
			continue
		}
		s, err := parseNetDevLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d of net/dev: %w", n, err)
		}
		if s.Name != "lo" {
			stats = append(stats, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return stats, nil
}

// parseNetDevLine parses "  eth0: 1 2 3 ...". A name cannot hold a colon
// (the kernel refuses it), and a wide counter can touch it: "eth0:123".
func parseNetDevLine(line []byte) (NetStats, error) {
	name, counters, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return NetStats{}, fmt.Errorf("no interface name in %q", line)
	}
	fields := bytes.Fields(counters)
	if len(fields) < netDevColumns {
		return NetStats{}, fmt.Errorf("%d counters in %q, want %d", len(fields), line, netDevColumns)
	}
	var v [netDevColumns]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(fields[i]), 10, 64)
		if err != nil {
			return NetStats{}, fmt.Errorf("counter %d in %q: %w", i, line, err)
		}
		v[i] = n
	}
	return NetStats{
		Name:    string(bytes.TrimSpace(name)),
		RxBytes: v[netDevRxBytes], RxErrors: v[netDevRxErrors],
		TxBytes: v[netDevTxBytes], TxErrors: v[netDevTxErrors],
	}, nil
}
