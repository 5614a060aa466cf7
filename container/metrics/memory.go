package metrics

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"

	"github.com/huskrt/husk/container/usage"
)

// memoryKeys are the memory.stat keys each cgroup version names the
// counters by. v1's total_ ones include descendants, as v2's always do;
// v1 alone also has the cgroup's own page faults (scope "container").
type memoryKeys struct {
	cache, rss, mapped, inactiveFile string
	pgfault, pgmajfault              string // hierarchy
	ownPgfault, ownPgmajfault        string // the cgroup alone
}

var (
	memoryKeysV1 = memoryKeys{
		cache: "total_cache", rss: "total_rss", mapped: "total_mapped_file", inactiveFile: "total_inactive_file",
		pgfault: "total_pgfault", pgmajfault: "total_pgmajfault",
		ownPgfault: "pgfault", ownPgmajfault: "pgmajfault",
	}
	// v2 has no per-cgroup-only counters; cadvisor reports the
	// hierarchical ones for both scopes, and so does this.
	memoryKeysV2 = memoryKeys{
		cache: "file", rss: "anon", mapped: "file_mapped", inactiveFile: "inactive_file",
		pgfault: "pgfault", pgmajfault: "pgmajfault",
		ownPgfault: "pgfault", ownPgmajfault: "pgmajfault",
	}
)

func (c *cgroupSource) memory(e *emitter) {
	dir := c.m.Path("memory")
	if dir == "" {
		return
	}
	st, ok := c.read(cgroups.Memory, c.file("memory", "memory.usage_in_bytes", "memory.current"))
	if st == nil || !ok[0] {
		return
	}
	ms := &st.MemoryStats
	keys := memoryKeysV1
	if c.v2 {
		keys = memoryKeysV2
	}
	e.add(memUsage, ms.Usage.Usage)
	// memory.peak came in kernel 5.19; before it the manager reads 0.
	if !c.v2 || cgroups.PathExists(filepath.Join(dir, "memory.peak")) {
		e.add(memMaxUsage, ms.Usage.MaxUsage)
	}
	e.add(memWorkingSet, usage.WorkingSet(ms.Usage.Usage, ms.Stats[keys.inactiveFile]))
	addStat(e, memCache, ms.Stats, keys.cache)
	addStat(e, memRSS, ms.Stats, keys.rss)
	addStat(e, memMapped, ms.Stats, keys.mapped)
	c.kernelMemory(e, dir, ms)
	c.swap(e, dir, ms)
	faults(e, ms.Stats, keys)
	c.memoryEvents(e, dir, ms)
	pressure(e, ms.PSI, memWaiting, memStalled)
	c.reservation(e, dir)
}

func addStat(e *emitter, f *family, stats map[string]uint64, key string, extra ...string) {
	if v, ok := stats[key]; ok {
		e.add(f, v, extra...)
	}
}

// floorSub subtracts counters read at different instants, which can cross.
func floorSub(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}

// kernelMemory is kmem on v1 (gone from kernels without kmem accounting),
// and on v2 the "kernel" line of memory.stat (5.18+), else the sum of the
// kernel allocations older kernels itemise.
func (c *cgroupSource) kernelMemory(e *emitter, dir string, ms *cgroups.MemoryStats) {
	if !c.v2 {
		if cgroups.PathExists(filepath.Join(dir, "memory.kmem.usage_in_bytes")) {
			e.add(memKernel, ms.KernelUsage.Usage)
		}
		return
	}
	if v, ok := ms.Stats["kernel"]; ok {
		e.add(memKernel, v)
		return
	}
	var sum uint64
	found := false
	for _, k := range []string{"kernel_stack", "pagetables", "percpu", "slab"} {
		if v, ok := ms.Stats[k]; ok {
			sum += v
			found = true
		}
	}
	if found {
		e.add(memKernel, sum)
	}
}

// swap is memory+swap less memory on v1, swap.current on v2. Without swap
// accounting it is known only when the node has no swap at all.
func (c *cgroupSource) swap(e *emitter, dir string, ms *cgroups.MemoryStats) {
	switch {
	case !c.v2 && cgroups.PathExists(filepath.Join(dir, "memory.memsw.usage_in_bytes")):
		e.add(memSwap, floorSub(ms.SwapUsage.Usage, ms.Usage.Usage))
	case c.v2 && cgroups.PathExists(filepath.Join(dir, "memory.swap.current")):
		e.add(memSwap, ms.SwapOnlyUsage.Usage)
	case nodeHasNoSwap():
		e.add(memSwap, 0)
	}
}

// nodeHasNoSwap reads SwapTotal from /proc/meminfo.
func nodeHasNoSwap() bool {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "SwapTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return err == nil && kb == 0
	}
	return false
}

// faults reports page faults as cadvisor does: failure_type pgfault or
// pgmajfault, scope container (the cgroup alone) or hierarchy.
func faults(e *emitter, stats map[string]uint64, keys memoryKeys) {
	addStat(e, memFailures, stats, keys.ownPgfault, "pgfault", "container")
	addStat(e, memFailures, stats, keys.ownPgmajfault, "pgmajfault", "container")
	addStat(e, memFailures, stats, keys.pgfault, "pgfault", "hierarchy")
	addStat(e, memFailures, stats, keys.pgmajfault, "pgmajfault", "hierarchy")
}

// memoryEvents reads the OOM kill counter (v1 memory.oom_control, v2
// memory.events; kernels before 4.13 lack it) and v2's failcnt analogue:
// memory.events "max", the times usage was about to pass the limit.
func (c *cgroupSource) memoryEvents(e *emitter, dir string, ms *cgroups.MemoryStats) {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	// An unreadable file leaves ev nil, and the values out.
	ev, _ := readKeyValues(filepath.Join(dir, file))
	if !c.v2 {
		e.add(memFailcnt, ms.Usage.Failcnt)
	} else {
		addStat(e, memFailcnt, ev, "max")
	}
	addStat(e, oomEvents, ev, "oom_kill")
}

// reservation is the memory soft limit: v1 soft_limit_in_bytes, v2
// memory.low; no reservation is 0, as cadvisor reports it.
func (c *cgroupSource) reservation(e *emitter, dir string) {
	file := "memory.soft_limit_in_bytes"
	if c.v2 {
		file = "memory.low"
	}
	v, unlimited, err := readLimit(dir, file)
	if err != nil {
		return
	}
	if unlimited {
		v = 0
	}
	e.add(specMemReservation, v)
}
