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

	"github.com/huskrt/husk/shim/shimapi"
)

// startShim starts the pod's husk-shim in its own session, so that it
// survives huskd, and waits until it reports that the pause runs. The shim
// reads the pause spec from dir. On error the shim has exited (it undoes its
// own work before reporting a failure) or has been killed.
func (m *Manager) startShim(ctx context.Context, id, dir string) (shimPID, pausePID int, exited <-chan struct{}, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, nil, err
	}
	defer r.Close()
	logf, err := os.OpenFile(filepath.Join(dir, shimapi.LogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return 0, 0, nil, err
	}
	defer logf.Close()

	cmd := exec.Command(m.cfg.ShimPath, "--id="+id, "--dir="+dir, "--runc="+m.cfg.RuncPath)
	cmd.Dir = dir
	// One P is plenty for a process that mostly sleeps, and each P keeps
	// its own cache of heap spans.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w} // becomes shimapi.SyncFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, 0, nil, fmt.Errorf("starting %s: %w", m.cfg.ShimPath, err)
	}
	w.Close()
	done := make(chan struct{})
	go func() {
		// huskd is the shim's parent until huskd exits; reap it.
		_ = cmd.Wait()
		close(done)
	}()

	kill := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	// A shim that reported a failure has undone its work and exits; give it
	// a moment, then make sure.
	waitExit := func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			kill()
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = r.SetReadDeadline(dl)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		kill()
		return 0, 0, nil, fmt.Errorf("waiting for the shim to start the pause: %w", err)
	}
	var ready shimapi.Ready
	if len(bytes.TrimSpace(b)) == 0 {
		waitExit()
		return 0, 0, nil, fmt.Errorf("shim exited before starting the pause (%s); its log: %s",
			cmd.ProcessState, tail(filepath.Join(dir, shimapi.LogName)))
	}
	if err := json.Unmarshal(b, &ready); err != nil {
		kill()
		return 0, 0, nil, fmt.Errorf("shim sent %q: %w", b, err)
	}
	if ready.Error != "" {
		waitExit()
		return 0, 0, nil, fmt.Errorf("shim could not start the pause: %s", ready.Error)
	}
	return cmd.Process.Pid, ready.PausePID, done, nil
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
