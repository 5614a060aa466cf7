package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strconv"
	"sync"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"

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
}

// memoryUnlimited is where a limit stops being one: v1 reports "no limit"
// as a page-rounded huge number, v2 as "max". containerd and cadvisor use
// the same bound.
const memoryUnlimited = uint64(1) << 62

// The memory.stat keys each cgroup version names the counters by. v1's
// total_ ones include the cgroup's descendants, as v2's always do. v1's
// memory.stat also carries the limit (hierarchical_memory_limit: the
// lowest of the cgroup's and its ancestors', the one the kernel enforces),
// which spares a read of memory.limit_in_bytes; v2's has none.
type memoryKeys struct{ inactiveFile, rss, pgfault, pgmajfault, limit string }

var (
	memoryKeysV1 = memoryKeys{"total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault", "hierarchical_memory_limit"}
	memoryKeysV2 = memoryKeys{"inactive_file", "anon", "pgfault", "pgmajfault", ""}
)

// ReadCgroupStats reads the CPU and memory counters of the cgroup at path
// (cgroupfs form, e.g. /kubepods/pod1/<id>) once: OpenCgroup, Read, Close.
// A cgroup that does not exist is an error wrapping os.ErrNotExist.
func ReadCgroupStats(p string) (CgroupStats, error) {
	r, err := OpenCgroup(p)
	if err != nil {
		return CgroupStats{}, err
	}
	defer r.Close()
	return r.Read()
}

// CgroupReader reads the CPU and memory counters of one cgroup through
// the files it keeps open: cpuacct.usage (v2: cpu.stat), the memory usage,
// memory.stat and, on v2 only, memory.max (v1's memory.stat holds the
// limit). A cgroup file read again from offset 0 is generated afresh by
// the kernel, so a Read is three preads on v1, four on v2 (~5 µs each: the
// syscalls are most of a stats call's cost), where opening each file by
// its path costs ~30 µs on a loaded 2-core machine; the cgroups library's
// Stats reads some twenty files and resolves the cgroup's paths on every
// call (0.5 ms a cgroup). The OOM kill counter is not among them: the shim
// reads it (from OOMFile) when a container exits. A CgroupReader is safe
// for concurrent use.
type CgroupReader struct {
	v2 bool

	mu                       sync.Mutex
	cpu, usage, limit, stats *os.File
	buf                      []byte
}

// OpenCgroup opens the accounting files of the cgroup at path (cgroupfs
// form). A cgroup that does not exist is an error wrapping os.ErrNotExist.
func OpenCgroup(p string) (*CgroupReader, error) {
	dirs, err := accountingDirs(p)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	r := &CgroupReader{v2: dirs.v2, buf: make([]byte, 4096)}
	type file struct {
		f         **os.File
		dir, name string
	}
	files := []file{
		{&r.cpu, dirs.cpu, "cpuacct.usage"},
		{&r.usage, dirs.memory, "memory.usage_in_bytes"},
		{&r.stats, dirs.memory, "memory.stat"},
	}
	if dirs.v2 {
		files = []file{
			{&r.cpu, dirs.cpu, "cpu.stat"},
			{&r.usage, dirs.memory, "memory.current"},
			{&r.limit, dirs.memory, "memory.max"},
			{&r.stats, dirs.memory, "memory.stat"},
		}
	}
	for _, f := range files {
		if *f.f, err = cgroups.OpenFile(f.dir, f.name, unix.O_RDONLY); err != nil {
			r.Close()
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
	}
	return r, nil
}

// Read reads the counters now. Once the cgroup is removed it fails (the
// kernel answers ENODEV); the reader is then of no more use.
func (r *CgroupReader) Read() (CgroupStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var st CgroupStats
	var limit uint64
	var err error
	if r.v2 {
		err = r.readFile(r.cpu, func(b []byte) error {
			scanKeyed(b, func(k []byte, v uint64) {
				if string(k) == "usage_usec" {
					st.CPUUsageNanos = v * 1000
				}
			})
			return nil
		})
	} else {
		err = r.readUint(r.cpu, &st.CPUUsageNanos)
	}
	if err == nil {
		err = r.readUint(r.usage, &st.MemoryUsageBytes)
	}
	if err == nil && r.limit != nil {
		err = r.readUint(r.limit, &limit)
	}
	keys := memoryKeysV1
	if r.v2 {
		keys = memoryKeysV2
	}
	var inactiveFile uint64
	if err == nil {
		err = r.readFile(r.stats, func(b []byte) error {
			scanKeyed(b, func(k []byte, v uint64) {
				switch string(k) {
				case keys.inactiveFile:
					inactiveFile = v
				case keys.rss:
					st.MemoryRSSBytes = v
				case keys.pgfault:
					st.PageFaults = v
				case keys.pgmajfault:
					st.MajorPageFaults = v
				case keys.limit:
					if !r.v2 {
						limit = v
					}
				}
			})
			return nil
		})
	}
	if err != nil {
		return CgroupStats{}, fmt.Errorf("reading cgroup stats: %w", err)
	}
	st.MemoryWorkingSetBytes = usage.WorkingSet(st.MemoryUsageBytes, inactiveFile)
	st.MemoryAvailableBytes = available(limit, st.MemoryWorkingSetBytes)
	return st, nil
}

// Close closes the reader's files.
func (r *CgroupReader) Close() error {
	for _, f := range []*os.File{r.cpu, r.usage, r.limit, r.stats} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}

// readFile reads all of f from offset 0 into r.buf, growing it as needed,
// and hands it to parse. mu must be held.
func (r *CgroupReader) readFile(f *os.File, parse func([]byte) error) error {
	for {
		n, err := f.ReadAt(r.buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n < len(r.buf) {
			return parse(r.buf[:n])
		}
		r.buf = make([]byte, 2*len(r.buf))
	}
}

func (r *CgroupReader) readUint(f *os.File, v *uint64) error {
	return r.readFile(f, func(b []byte) error {
		n, err := parseCgroupUint(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		*v = n
		return nil
	})
}

// parseCgroupUint parses a single-number cgroup file; "max" (v2's no
// limit) is the largest number.
func parseCgroupUint(b []byte) (uint64, error) {
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(s, 10, 64)
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

// parseKeyed parses "key value" lines (memory.stat, cpu.stat,
// memory.events, memory.oom_control); lines that are not a key and an
// unsigned number are skipped.
func parseKeyed(b []byte) map[string]uint64 {
	out := make(map[string]uint64, 48)
	scanKeyed(b, func(k []byte, v uint64) { out[string(k)] = v })
	return out
}

// scanKeyed calls f with each "key value" line of b whose value is an
// unsigned number. k is only valid during the call.
func scanKeyed(b []byte, f func(k []byte, v uint64)) {
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
			f(k, n)
		}
	}
}

func available(limit, workingSet uint64) uint64 {
	if limit > memoryUnlimited || limit <= workingSet {
		return 0
	}
	return limit - workingSet
}

// OOMFile is the file of the cgroup at p (cgroupfs form) whose oom_kill
// line counts its OOM kills, where the host mounts the memory controller:
// v2's memory.events, v1's memory.oom_control. It is what the shim reads
// when a container exits; "" when no memory controller is mounted.
func OOMFile(p string) string {
	dirs, err := accountingDirs(p)
	if err != nil {
		return ""
	}
	if dirs.v2 {
		return path.Join(dirs.memory, "memory.events")
	}
	return path.Join(dirs.memory, "memory.oom_control")
}
