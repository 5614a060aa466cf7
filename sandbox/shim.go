package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/internal/tracing"
	"github.com/huskrt/husk/shim/shimapi"
)

// shimStart is a shim started early, waiting for go (shimapi.GoFD).
type shimStart struct {
	cmd  *exec.Cmd
	dir  string
	sync *os.File      // read end of shimapi.SyncFD
	goW  *os.File      // write end of shimapi.GoFD; nil once used
	done chan struct{} // closed when the shim has exited and been reaped
}

// launchShim starts the pod's husk-shim in its own session, so that it
// survives huskd. The shim does its own start-up meanwhile, and starts the
// pause only when ready says go: huskd's preparation of the pod (pins,
// files, the pause's spec) overlaps the shim's exec and start. abandon
// makes a shim that never got go exit.
func (m *Manager) launchShim(id, dir string) (*shimStart, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	defer goR.Close()
	defer w.Close()
	logf, err := os.OpenFile(filepath.Join(dir, shimapi.LogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		r.Close()
		goW.Close()
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(m.cfg.ShimPath, "--id="+id, "--dir="+dir, "--runc="+m.cfg.RuncPath)
	cmd.Dir = dir
	// One P is plenty for a process that mostly sleeps, and each P keeps
	// its own cache of heap spans.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}
	// A race-built shim (make test) reports where huskd's reports go.
	if v, ok := os.LookupEnv("GORACE"); ok {
		cmd.Env = append(cmd.Env, "GORACE="+v)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w, goR} // shimapi.SyncFD, shimapi.GoFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		goW.Close()
		return nil, fmt.Errorf("starting %s: %w", m.cfg.ShimPath, err)
	}
	s := &shimStart{cmd: cmd, dir: dir, sync: r, goW: goW, done: make(chan struct{})}
	go func() {
		// huskd is the shim's parent until huskd exits; reap it.
		_ = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// dialShim connects to a pod's shim; each call on the connection is a
// span of the traced call it is made in.
func dialShim(ctx context.Context, stateDir string) (*shimapi.Client, error) {
	c, err := shimapi.Dial(ctx, filepath.Join(stateDir, shimapi.SocketName))
	if err != nil {
		return nil, err
	}
	return c.Traced(func(ctx context.Context, method string) func(error) {
		_, span := tracing.Step(ctx, "shim."+strings.TrimPrefix(method, "Shim."))
		return func(err error) { tracing.End(span, err) }
	}), nil
}

// abandon makes a shim that was never told to go exit (it has made nothing
// yet), and waits for it.
func (s *shimStart) abandon() {
	if s.goW == nil {
		return
	}
	s.goW.Close()
	s.goW = nil
	s.sync.Close()
	s.waitExit()
}

// kill kills the shim and waits until it is reaped.
func (s *shimStart) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// waitExit waits for a shim that is on its way out (it undoes its own work
// first), and kills it if it takes more than a moment.
func (s *shimStart) waitExit() {
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
	}
}

// ready tells the shim to start the pause (its spec is in the shim's
// directory) and waits until it reports that the pause runs. On error the
// shim has exited (it undoes its own work before reporting a failure) or
// has been killed.
func (s *shimStart) ready(ctx context.Context) (shimPID, pausePID int, err error) {
	defer s.sync.Close()
	// A shim that already exited cannot read it (EPIPE): what it said on
	// the sync pipe, or its silence, is the answer then.
	_, _ = s.goW.Write([]byte{1})
	s.goW.Close()
	s.goW = nil
	if dl, ok := ctx.Deadline(); ok {
		_ = s.sync.SetReadDeadline(dl)
	}
	b, err := io.ReadAll(s.sync)
	if err != nil {
		s.kill()
		return 0, 0, fmt.Errorf("waiting for the shim to start the pause: %w", err)
	}
	var rd shimapi.Ready
	if len(bytes.TrimSpace(b)) == 0 {
		s.waitExit()
		return 0, 0, fmt.Errorf("shim exited before starting the pause (%s); its log: %s",
			s.cmd.ProcessState, tail(filepath.Join(s.dir, shimapi.LogName)))
	}
	if err := json.Unmarshal(b, &rd); err != nil {
		s.kill()
		return 0, 0, fmt.Errorf("shim sent %q: %w", b, err)
	}
	if rd.Error != "" {
		s.waitExit()
		return 0, 0, fmt.Errorf("shim could not start the pause: %s", rd.Error)
	}
	return s.cmd.Process.Pid, rd.PausePID, nil
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// isShim says whether pid is the husk-shim of pod id, so that a pid that
// was reused by another process is never signalled.
func isShim(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for _, arg := range bytes.Split(b, []byte{0}) {
		if string(arg) == "--id="+id {
			return true
		}
	}
	return false
}

// shimPIDFromFile reads the pid a shim wrote into its pod directory.
func shimPIDFromFile(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, shimapi.PidName))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// openShim opens a pidfd on pid if pid is pod id's shim; ok is false when
// it is not (or no longer) that shim. Once the pidfd is open the pid cannot
// be reused, and the identity is checked again through it.
func openShim(pid int, id string) (fd int, ok bool, err error) {
	if !isShim(pid, id) {
		return -1, false, nil
	}
	fd, err = unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, err
	}
	if !isShim(pid, id) {
		unix.Close(fd)
		return -1, false, nil
	}
	return fd, true, nil
}

// killShim kills pod id's shim if pid still is that shim, and waits up to
// timeout for it to be gone.
func killShim(pid int, id string, timeout time.Duration) error {
	fd, ok, err := openShim(pid, id)
	if !ok {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return waitPidfd(fd, timeout)
}

// waitShimExit waits up to timeout for pid to exit, if it still is pod
// id's shim.
func waitShimExit(pid int, id string, timeout time.Duration) error {
	fd, ok, err := openShim(pid, id)
	if !ok {
		return err
	}
	defer unix.Close(fd)
	return waitPidfd(fd, timeout)
}

// waitPidfd waits for a pidfd to become readable, which it does when the
// process exits (a zombie counts).
func waitPidfd(fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return errors.New("process did not exit in time")
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}
