package container

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	cgroupsv1 "github.com/opencontainers/cgroups/fs"
	"golang.org/x/sys/unix"
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
func testCgroup(t *testing.T, name string, limit int64) (string, func(pid int)) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	parent := "/husk-stats-test-" + hex.EncodeToString(b)
	p := path.Join(parent, name)
	m, err := cgroupManager(p)
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
func limitMemory(t *testing.T, m cgroups.Manager, dir string, limit int64) {
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
func removeCgroupDirs(t *testing.T, dirs []string) {
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
	case st.OOMKills != 0:
		t.Error("OOM kills in a cgroup that had none")
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

func TestMissingCgroupIsNotExist(t *testing.T) {
	requireRoot(t)
	p, _ := testCgroup(t, "present", 0)
	missing := path.Join(path.Dir(p), "missing")
	if _, err := ReadCgroupStats(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadCgroupStats(%s) = %v, want ErrNotExist", missing, err)
	}
	if _, err := ReadOOMKills(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadOOMKills(%s) = %v, want ErrNotExist", missing, err)
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

	n, rerr := ReadOOMKills(p)
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
	st, err := ReadCgroupStats(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.OOMKills != n {
		t.Errorf("ReadCgroupStats counts %d OOM kills, ReadOOMKills %d", st.OOMKills, n)
	}
}

func TestDirUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1000)
	must(os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	write("sub/c", 10)
	must(os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "a2")))
	must(os.Symlink("a", filepath.Join(dir, "s")))
	write("empty", 0)
	must(os.Truncate(filepath.Join(dir, "empty"), 0))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	must(f.Truncate(1 << 20))
	must(f.Close())
	// root, a (= b = sub/a2), sub, sub/c, s, empty, sparse
	const wantBytes, wantInodes = 1000 + 10 + 1<<20, 7

	mountVolume(t, filepath.Join(dir, "volume"))

	gotBytes, gotInodes, err := DirUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotBytes != wantBytes || gotInodes != wantInodes {
		t.Errorf("DirUsage = %d bytes, %d inodes; want %d, %d", gotBytes, gotInodes, wantBytes, wantInodes)
	}
	if _, _, err := DirUsage(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DirUsage of a missing directory = %v, want ErrNotExist", err)
	}
}

// mountVolume mounts a tmpfs with a file in it at dir, when the test may
// mount: DirUsage must not count it.
func mountVolume(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: mount points are not checked")
		return
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Logf("mounting a tmpfs: %v; mount points are not checked", err)
		return
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "data"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
}

const netDevHeader = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`

func TestParseNetDev(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []NetStats
		wantErr bool
	}{
		{name: "empty", text: ""},
		{name: "header only", text: netDevHeader},
		{name: "loopback skipped", text: netDevHeader +
			"    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0\n"},
		{name: "interfaces", text: netDevHeader +
			"    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0\n" +
			"  eth0: 98765432   54321    3    1    0     0          0        12 12345678    4321    5    0    0     0       0          0\n" +
			"veth1234567890ab:12345678901234 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n",
			want: []NetStats{
				{Name: "eth0", RxBytes: 98765432, RxErrors: 3, TxBytes: 12345678, TxErrors: 5},
				{Name: "veth1234567890ab", RxBytes: 12345678901234, RxErrors: 2, TxBytes: 8, TxErrors: 10},
			}},
		{name: "no name", text: netDevHeader + "  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "short", text: netDevHeader + "  eth0: 1 2 3\n", wantErr: true},
		{name: "not a number", text: netDevHeader + "  eth0: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
		{name: "negative", text: netDevHeader + "  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseNetDev(strings.NewReader(tt.text))
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: got %+v, want %+v", tt.name, got[i], tt.want[i])
			}
		}
	}
}

func TestReadNetDev(t *testing.T) {
	stats, err := ReadNetDev(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", stats)
	for _, s := range stats {
		if s.Name == "" || s.Name == "lo" {
			t.Errorf("interface %q reported", s.Name)
		}
	}
	if _, err := ReadNetDev(0); err == nil {
		t.Error("ReadNetDev(0) succeeded")
	}
	if _, err := ReadNetDev(1 << 30); !errors.Is(err, os.ErrNotExist) { // above any pid_max
		t.Errorf("ReadNetDev of a missing pid = %v, want ErrNotExist", err)
	}
}
