package metrics

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// procsDir is a directory whose cgroup.procs (with its descendants') list
// the container's processes: on v1 any hierarchy will do, pids first as
// the one that counts tasks.
func (c *cgroupSource) procsDir() string {
	if c.v2 {
		return c.m.Path("")
	}
	for _, subsys := range []string{"pids", "memory", "cpuacct", "devices"} {
		if dir := c.m.Path(subsys); dir != "" {
			return dir
		}
	}
	return ""
}

// processes counts the container's processes, their threads (the Threads
// of each one's status, which is what pids.current counts too), open file
// descriptors and sockets (as cadvisor counts them) from /proc. A process
// that exits while it is read is not counted at all, so the four agree.
func (c *cgroupSource) processes(e *emitter) {
	dir := c.procsDir()
	if dir == "" {
		return
	}
	pids, err := cgroups.GetAllPids(dir)
	if err != nil {
		return
	}
	var total procCounts
	for _, pid := range pids {
		n, err := readProc(pid)
		if err != nil {
			continue
		}
		total.add(n)
	}
	e.add(processes, total.processes)
	e.add(threads, total.threads)
	e.add(fds, total.fds)
	e.add(sockets, total.sockets)
}

type procCounts struct {
	processes, threads, fds, sockets uint64
}

func (p *procCounts) add(q procCounts) {
	p.processes += q.processes
	p.threads += q.threads
	p.fds += q.fds
	p.sockets += q.sockets
}

func readProc(pid int) (procCounts, error) {
	n, err := readThreads(pid)
	if err != nil {
		return procCounts{}, err
	}
	fdCount, sockCount, err := readFDs(pid)
	if err != nil {
		return procCounts{}, err
	}
	return procCounts{processes: 1, threads: n, fds: fdCount, sockets: sockCount}, nil
}

// readThreads reads the Threads line of /proc/<pid>/status.
func readThreads(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("threads of pid %d: %w", pid, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("status of pid %d: %w", pid, err)
	}
	return 0, fmt.Errorf("status of pid %d has no Threads line", pid)
}

// readFDs counts /proc/<pid>/fd and the sockets among them. An fd closed
// between the listing and its readlink still counts as an fd: it was open.
func readFDs(pid int) (fds, sockets uint64, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, ent := range entries {
		target, err := os.Readlink(dir + "/" + ent.Name())
		if err == nil && strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return uint64(len(entries)), sockets, nil
}
