package shim

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper collects the exit status of every child of the shim. The shim is
// a child subreaper, so besides the husk-runc helpers it starts, the
// containers' processes become its children when their helper exits, and
// orphans inside a container without its own PID namespace land here too.
//
// Waiting for one pid (as os/exec does) would race with waiting for any,
// so nothing else in the shim may wait: it asks the reaper instead.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	// early holds the exits of pids nobody waited for yet: a process can die
	// before the helper that started it has told the shim its pid. Bounded,
	// because reaped orphans are never asked about.
	early map[int]unix.WaitStatus
	order []int
}

const maxEarlyExits = 1024

var (
	theReaper     *reaper
	theReaperOnce sync.Once
)

// newReaper returns the process's reaper. There is one: two would race to
// reap each other's children.
func newReaper() *reaper {
	theReaperOnce.Do(func() {
		theReaper = &reaper{waiters: map[int]chan unix.WaitStatus{}, early: map[int]unix.WaitStatus{}}
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, unix.SIGCHLD)
		go func() {
			for range sigc {
				theReaper.reapAll()
			}
		}()
	})
	return theReaper
}

// reapAll reaps every exited child: SIGCHLDs coalesce, so one signal may
// stand for many exits. Each is collected and delivered under the lock, so
// that kill, under the same lock, never signals a pid the reaper has
// already freed for reuse.
func (r *reaper) reapAll() {
	for r.reapOne() {
	}
}

func (r *reaper) reapOne() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return false
		}
		r.deliverLocked(pid, ws)
		return true
	}
}

// kill SIGKILLs pid if it is a child the reaper has not collected yet (an
// exited one is a zombie until then, so its pid cannot have been reused).
// A pid nobody waits for, or whose exit was delivered, is left alone.
func (r *reaper) kill(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, waiting := r.waiters[pid]; waiting {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

func (r *reaper) deliver(pid int, ws unix.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliverLocked(pid, ws)
}

func (r *reaper) deliverLocked(pid int, ws unix.WaitStatus) {
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- ws
		return
	}
	if len(r.order) >= maxEarlyExits {
		delete(r.early, r.order[0])
		r.order = r.order[1:]
	}
	r.early[pid] = ws
	r.order = append(r.order, pid)
}

// wait returns a channel that receives pid's exit status once. pid must be
// a child of the shim, or become one.
func (r *reaper) wait(pid int) <-chan unix.WaitStatus {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.early[pid]; ok {
		delete(r.early, pid)
		ch <- ws
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

// start starts a child and registers it before the reaper can see it exit.
func (r *reaper) start(path string, args []string, files []*os.File) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	p, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{Files: files})
	if err != nil {
		r.mu.Unlock()
		return 0, nil, err
	}
	pid := p.Pid
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = ch
	r.mu.Unlock()
	// The reaper, not os.Process.Wait, collects it. (Release sets Pid to
	// -1.)
	_ = p.Release()
	return pid, ch, nil
}

// exitCode is a wait status as a shell shows it: the code, or 128+signal.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
