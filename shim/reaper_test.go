package shim

import (
	"os"

	"golang.org/x/sys/unix"
	"testing"
	"time"
)

func TestReaperCollectsChildren(t *testing.T) {
	r := newReaper()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	files := []*os.File{devnull, devnull, devnull}
	for code, script := range map[int]string{0: "exit 0", 3: "exit 3", 137: "kill -9 $$"} {
		_, exited, err := r.start("/bin/sh", []string{"-c", script}, files)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ws := <-exited:
			if exitCode(ws) != code {
				t.Errorf("%q: exit code %d, want %d", script, exitCode(ws), code)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: no exit seen", script)
		}
	}
}

// A process can exit before anyone asks about it (its pid arrives later,
// from the helper that started it): the exit is kept for the asker.
func TestReaperKeepsEarlyExits(t *testing.T) {
	// Not the process's reaper: this one only bookkeeps.
	r := &reaper{waiters: map[int]chan unix.WaitStatus{}, early: map[int]unix.WaitStatus{}}
	r.deliver(4242, 7<<8)
	select {
	case ws := <-r.wait(4242):
		if exitCode(ws) != 7 {
			t.Errorf("exit code %d, want 7", exitCode(ws))
		}
	default:
		t.Fatal("early exit lost")
	}
	for i := 0; i < maxEarlyExits+10; i++ {
		r.deliver(100000+i, 0)
	}
	if len(r.early) > maxEarlyExits {
		t.Errorf("%d early exits kept, want at most %d", len(r.early), maxEarlyExits)
	}
}
