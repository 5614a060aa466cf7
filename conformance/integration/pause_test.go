package integration

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// startPause starts husk-pause, optionally as PID 1 of a new PID namespace.
// Its stderr goes to a file, read with stderr(), so that reading it does not
// race with os/exec's copying.
func startPause(t *testing.T, newPIDNS bool) (*exec.Cmd, func() string, <-chan error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(huskdtest.Bin(t), "husk-pause"))
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stderr = errFile
	stderr := func() string { b, _ := os.ReadFile(errFile.Name()); return string(b) }
	if newPIDNS {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return cmd, stderr, done
}

func waitExit(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("husk-pause did not exit within 30s")
		return nil
	}
}

func TestPauseVersion(t *testing.T) {
	out, err := exec.Command(filepath.Join(huskdtest.Bin(t), "husk-pause"), "-v").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "husk-pause ") {
		t.Errorf("husk-pause -v: %q, %v", out, err)
	}
}

func TestPauseIsStatic(t *testing.T) {
	f, err := elf.Open(filepath.Join(huskdtest.Bin(t), "husk-pause"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("husk-pause has a %v program header: it must be statically linked", p.Type)
		}
	}
}

func TestPauseSignals(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(fmt.Sprintf("pid1=%v/%v", pid1, sig), func(t *testing.T) {
				cmd, stderr, done := startPause(t, pid1)
				waitHandlers(t, cmd.Process.Pid)
				select {
				case err := <-done:
					t.Fatalf("husk-pause exited on its own: %v, stderr %q", err, stderr())
				default:
				}
				warned := strings.Contains(stderr(), "not running as PID 1")
				if warned == pid1 {
					t.Errorf("pid1=%v: stderr %q; want a warning exactly when not PID 1", pid1, stderr())
				}
				_ = cmd.Process.Signal(sig)
				if err := waitExit(t, done); err != nil {
					t.Errorf("after %v: %v, want exit 0", sig, err)
				}
			})
		}
	}
}

// A PID 1 ignores signals it has no handler for: SIGHUP must not stop it.
// SIGTERM after it proves it: the lower-numbered SIGHUP is delivered first,
// so the exit is SIGTERM's clean one only if SIGHUP was ignored.
func TestPauseIgnoresUnhandledSignalsAsPID1(t *testing.T) {
	cmd, _, done := startPause(t, true)
	waitHandlers(t, cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, done); err != nil {
		t.Fatalf("husk-pause as PID 1, sent SIGHUP then SIGTERM: %v; want exit 0 (SIGHUP ignored)", err)
	}
}

// waitHandlers waits until husk-pause has installed its handlers for
// SIGINT, SIGTERM and SIGCHLD (SigCgt in /proc/PID/status), after which it
// has also written its warning.
func waitHandlers(t *testing.T, pid int) {
	t.Helper()
	want := uint64(1)<<(syscall.SIGINT-1) | uint64(1)<<(syscall.SIGTERM-1) | uint64(1)<<(syscall.SIGCHLD-1)
	huskdtest.Eventually(t, 30*time.Second, "husk-pause installs its signal handlers", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
				cgt, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err == nil && cgt&want == want
			}
		}
		return false
	})
}

// The zombie-making helper: a shell in the pause's PID namespace starts
// children and exits, orphaning them to the pause.
func TestPauseReapsOrphans(t *testing.T) {
	cmd, _, _ := startPause(t, true)
	pid := cmd.Process.Pid
	waitHandlers(t, pid)
	// The orphans sleep until killed, so that all 20 are still there to be
	// counted however slow this machine is.
	out, err := exec.Command("nsenter", fmt.Sprintf("--pid=/proc/%d/ns/pid", pid), "--", "sh", "-c",
		"for i in $(seq 20); do sleep 1000 </dev/null >/dev/null 2>&1 & done; exit 0").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	orphans := strings.Fields(string(b))
	if len(orphans) != 20 {
		t.Fatalf("pause has %d children, want the 20 orphans", len(orphans))
	}
	// Killed together, their SIGCHLDs coalesce.
	for _, p := range orphans {
		n, _ := strconv.Atoi(p)
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
	huskdtest.Eventually(t, 30*time.Second, "all 20 orphans reaped", func() bool {
		for _, p := range orphans {
			if _, err := os.Stat("/proc/" + p); err == nil {
				return false
			}
		}
		return true
	})
}
