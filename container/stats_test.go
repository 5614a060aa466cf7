package container

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/internal/cgroup"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
}

// testCgroup creates <unique parent>/<name> in the memory and CPU
// accounting hierarchies, memory-limited when limit > 0, and returns its
// cgroupfs path and a function moving a process into it. When the test
// ends, what is left in it is killed and both cgroups are removed.
func testCgroup(t testing.TB, name string, limit int64) (string, func(pid int)) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	parent := "/husk-stats-test-" + hex.EncodeToString(b)
	p := path.Join(parent, name)
	m, err := cgroup.Manager(p)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	if cgroups.IsCgroup2UnifiedMode() {
		dirs = []string{m.Path("")}
		t.Cleanup(func() { removeCgroupDirs(t, dirs) })
		if err := m.Apply(-1); err != nil {
			t.Fatal(err)
		}
	} else {
		dirs = []string{m.Path("memory"), m.Path("cpuacct")}
		if dirs[0] == "" || dirs[1] == "" {
			t.Skip("no memory or cpuacct hierarchy")
		}
		t.Cleanup(func() { removeCgroupDirs(t, dirs) })
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if limit > 0 {
		limitMemory(t, m, dirs[0], limit)
	}
	return p, func(pid int) {
		t.Helper()
		for _, d := range dirs {
			if err := cgroups.WriteCgroupProc(d, pid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// limitMemory limits memory and, where swap is accounted, memory+swap:
// a cgroup that can swap is not OOM-killed.
func limitMemory(t testing.TB, m cgroups.Manager, dir string, limit int64) {
	t.Helper()
	r := &cgroups.Resources{Memory: limit}
	if cgroups.IsCgroup2UnifiedMode() {
		r.MemorySwap = limit // libcontainer's v1 semantics: no swap on top
		if err := m.Set(r); err != nil {
			t.Fatal(err)
		}
		return
	}
	if cgroups.PathExists(filepath.Join(dir, "memory.memsw.limit_in_bytes")) {
		r.MemorySwap = limit
	}
	if err := (&cgroupsv1.MemoryGroup{}).Set(dir, r); err != nil {
		t.Fatal(err)
	}
}

// removeCgroupDirs kills what is left in the cgroup's directories, then
// removes them and their parents.
func removeCgroupDirs(t testing.TB, dirs []string) {
	for _, d := range dirs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			pids, err := cgroups.GetPids(d)
			if err != nil || len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("cgroup %s still has processes %v", d, pids)
				break
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, dir := range []string{d, filepath.Dir(d)} {
			if err := cgroups.RemovePath(dir); err != nil {
				t.Errorf("removing cgroup %s: %v", dir, err)
			}
		}
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

func TestReadCgroupStats(t *testing.T) {
	requireRoot(t)
	const limit = 256 << 20
	p, join := testCgroup(t, "busy", limit)
	cmd, release, out := startGated(t, `
		i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done
		x=$(head -c 4000000 /dev/zero | tr '\0' x)
		echo ready
		sleep 60`)
	join(cmd.Process.Pid)
	release()
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the busy process said %q (%v)", line, err)
	}

	st, err := ReadCgroupStats(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	switch {
	case st.CPUUsageNanos == 0:
		t.Error("no CPU use")
	case st.MemoryUsageBytes < 4000000:
		t.Error("memory use below the 4 MB the shell holds")
	case st.MemoryWorkingSetBytes == 0 || st.MemoryWorkingSetBytes > st.MemoryUsageBytes:
		t.Error("working set not within (0, usage]")
	case st.MemoryRSSBytes == 0 || st.PageFaults == 0:
		t.Error("no RSS or page faults")
	case st.MemoryAvailableBytes != limit-st.MemoryWorkingSetBytes:
		t.Errorf("available %d, want limit - working set = %d", st.MemoryAvailableBytes, limit-st.MemoryWorkingSetBytes)
	}

	parent, err := ReadCgroupStats(path.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if parent.MemoryAvailableBytes != 0 {
		t.Errorf("unlimited parent has %d bytes available, want 0", parent.MemoryAvailableBytes)
	}
	if parent.CPUUsageNanos < st.CPUUsageNanos {
		t.Errorf("parent CPU %d below its child's %d", parent.CPUUsageNanos, st.CPUUsageNanos)
	}
}

// On v1 a cgroup with no limit of its own under a limited one (a
// container without a memory limit in a pod with pod-level resources)
// has the parent's limit available: the kernel enforces the lowest limit
// on the path, and memory.stat's hierarchical_memory_limit names it. v2
// reports memory.max of the cgroup itself.
func TestAvailableFollowsTheEnforcedLimit(t *testing.T) {
	requireRoot(t)
	if cgroups.IsCgroup2UnifiedMode() {
		t.Skip("v1 semantics")
	}
	const limit = 128 << 20
	p, _ := testCgroup(t, "limited", limit)
	inner := path.Join(p, "inner")
	dirs, err := accountingDirs(inner)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dirs.memory, dirs.cpu} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cgroups.RemovePath(d); err != nil {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		})
	}
	st, err := ReadCgroupStats(inner)
	if err != nil {
		t.Fatal(err)
	}
	if want := limit - st.MemoryWorkingSetBytes; st.MemoryAvailableBytes != want {
		t.Errorf("available %d under a parent limited to %d, want %d", st.MemoryAvailableBytes, limit, want)
	}
}

func TestMissingCgroupIsNotExist(t *testing.T) {
	requireRoot(t)
	p, _ := testCgroup(t, "present", 0)
	missing := path.Join(path.Dir(p), "missing")
	if _, err := ReadCgroupStats(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadCgroupStats(%s) = %v, want ErrNotExist", missing, err)
	}
	if _, err := oomKills(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("oomKills(%s) = %v, want ErrNotExist", missing, err)
	}
}

func TestReadOOMKills(t *testing.T) {
	requireRoot(t)
	p, join := testCgroup(t, "oom", 8<<20)
	cmd, release, _ := startGated(t, `x=$(head -c 50000000 /dev/zero | tr '\0' x)`)
	join(cmd.Process.Pid)
	release()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var err error
	select {
	case err = <-waitErr:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-waitErr
		t.Fatal("the process did not end within 30s")
	}

	n, rerr := oomKills(p)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if n == 0 {
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			t.Fatal("the process was SIGKILLed but no OOM kill was counted")
		}
		t.Skipf("the kernel did not OOM-kill in an 8 MiB cgroup (the process ended with %v)", err)
	}
	t.Logf("%d OOM kills; the process ended with %v", n, err)
	// The shim reads the counter from the file OOMFile names: the same
	// count, where the host mounts the memory controller.
	b, ferr := os.ReadFile(OOMFile(p))
	if ferr != nil {
		t.Fatal(ferr)
	}
	if got := parseKeyed(b)["oom_kill"]; got != n {
		t.Errorf("%s says oom_kill %d, the cgroups library %d", OOMFile(p), got, n)
	}
}

func TestParseKeyed(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]uint64
	}{
		{"cache 4096\nrss 8192\ntotal_inactive_file 12\n", map[string]uint64{"cache": 4096, "rss": 8192, "total_inactive_file": 12}},
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3", map[string]uint64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}},
		{"usage_usec 1500\n\nbroken\nneg -1\nword x\n", map[string]uint64{"usage_usec": 1500}},
		{"", map[string]uint64{}},
	} {
		got := parseKeyed([]byte(c.in))
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseKeyed(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseCgroupUint(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		err  bool
	}{
		{"42\n", 42, false},
		{"max\n", math.MaxUint64, false},
		{"9223372036854771712\n", 9223372036854771712, false}, // v1's "no limit"
		{"4x\n", 0, true},
		{"", 0, true},
		{"-1\n", 0, true},
	} {
		got, err := parseCgroupUint([]byte(c.in))
		if got != c.want || (err != nil) != c.err {
			t.Errorf("parseCgroupUint(%q) = %d, %v", c.in, got, err)
		}
	}
	if available(math.MaxUint64, 10) != 0 || available(9223372036854771712, 10) != 0 || available(100, 30) != 70 || available(30, 100) != 0 {
		t.Error("available: a limit that is none, or under the working set, must give 0")
	}
}

// A CgroupReader keeps its files open and reads them again: each Read
// sees the counters of its time, and once the cgroup is gone Read fails.
func TestCgroupReaderRereads(t *testing.T) {
	requireRoot(t)
	p, join := testCgroup(t, "spin", 0)
	r, err := OpenCgroup(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	cmd, release, out := startGated(t, `
		i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
		echo done
		sleep 60`)
	join(cmd.Process.Pid)
	release()
	if line, err := out.ReadString('\n'); line != "done\n" {
		t.Fatalf("the busy process said %q (%v)", line, err)
	}
	after, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if after.CPUUsageNanos <= before.CPUUsageNanos || after.MemoryUsageBytes <= before.MemoryUsageBytes {
		t.Errorf("the same open files read %+v, then %+v after the process ran: not read again", before, after)
	}
	once, err := ReadCgroupStats(p)
	if err != nil || once.CPUUsageNanos < after.CPUUsageNanos {
		t.Errorf("ReadCgroupStats: %+v, %v; the reader read %d ns before", once, err, after.CPUUsageNanos)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	m, err := cgroup.Manager(p)
	if err != nil {
		t.Fatal(err)
	}
	// The shell's sleep may outlive the shell (not every sh execs its
	// last command): kill what is left, and remove the cgroup once empty.
	deadline := time.Now().Add(30 * time.Second)
	for {
		removed := true
		for _, d := range m.GetPaths() {
			// Each hierarchy's own list: the test joined only some.
			pids, _ := cgroups.GetPids(d)
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			if err := cgroups.RemovePath(d); err != nil {
				removed = false
			}
		}
		if removed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup %s still there 30s after its processes were killed", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := r.Read(); err == nil {
		t.Errorf("Read of a removed cgroup: %+v, want an error", st)
	}
}

// BenchmarkCgroupReaderRead reads one small cgroup's counters through an
// open reader, as every container of a ListContainerStats call is read.
func BenchmarkCgroupReaderRead(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root")
	}
	p, _ := testCgroup(b, "bench", 64<<20)
	r, err := OpenCgroup(p)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// oomKills reads the cgroup's OOM kill counter through the cgroups
// library, the reference OOMFile's file is checked against.
func oomKills(p string) (uint64, error) {
	m, err := cgroup.Manager(p)
	if err != nil {
		return 0, err
	}
	return m.OOMKillCount()
}
