// Package cgwarm starts the kernel's wait for an RCU grace period that the
// next move of a process between cgroups would otherwise pay in full.
//
// Every write of a PID to cgroup.procs takes the global
// cgroup_threadgroup_rwsem for writing; when no such write happened within
// the last grace period, that first costs a synchronize_rcu (6-14 ms on the
// test machine), and libcontainer's placement of a container's init (or of
// an exec'd process) is such a write. A write that is already under way
// when that one comes shortens it to what is left of the same grace
// period, and one that ended within the last grace period makes it free.
// Warm does such a write, moving huskd to the cgroup it is already in (the
// kernel changes nothing), in the background, at the start of a request
// that will place a process: huskd's own work, the shim's and husk-runc's
// start then overlap the wait instead of preceding it.
//
// Kernels mounted with favordynmods never pay the wait; the write is then
// cheap and changes nothing either.
package cgwarm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

var (
	once  sync.Once
	procs string // huskd's own cgroup.procs in one hierarchy, "" if none
	pid   = []byte(strconv.Itoa(os.Getpid()))
	// busy keeps one write at a time: a second one started during the
	// first adds nothing, and a flood of requests makes one write.
	busy atomic.Bool
)

// find picks the first hierarchy of /proc/self/cgroup that is mounted
// where runc and the cgroups library expect it.
func find() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, p := range candidates("/sys/fs/cgroup", string(b)) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// candidates turns /proc/self/cgroup's lines (hierarchy-ID:controllers:
// path) into the cgroup.procs files they name under root, in order.
func candidates(root, procSelfCgroup string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(procSelfCgroup), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		dir := root // cgroup v2: one hierarchy, ID 0, no controllers listed
		if f[1] != "" {
			// v1: mounted under the first controller's name (cpu,cpuacct
			// has cpu as a link) or the name= of a named hierarchy.
			dir = filepath.Join(root, strings.TrimPrefix(strings.Split(f[1], ",")[0], "name="))
		}
		out = append(out, filepath.Join(dir, f[2], "cgroup.procs"))
	}
	return out
}

// Warm starts the wait in the background and returns at once.
func Warm() {
	once.Do(func() { procs = find() })
	if procs == "" || !busy.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer busy.Store(false)
		// Errors (a v2 cgroup with controllers of its own refuses
		// processes) come after the lock was taken: the wait has started
		// all the same.
		_ = os.WriteFile(procs, pid, 0)
	}()
}
