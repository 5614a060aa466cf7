package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs/errkind"
	"github.com/huskrt/husk/shim/shimapi"
)

// ctr is one app container of the pod.
type ctr struct {
	id      string
	oomFile string // see shimapi.CreateContainerArgs.OOMFile
	bundle  string

	state shimapi.ContainerState // guarded by server.mu

	log       *LogWriter
	output    fanout // attached callers
	stdinMu   sync.Mutex
	stdin     *os.File // the shim's end of the container's stdin; nil without stdin (or once closed)
	stdinOnce bool
	console   *os.File // the pty master of a tty container
	exited    chan struct{}
	ioDone    chan struct{} // closed when the container's output is all logged
	// oomBefore is the cgroup's OOM kill count at creation: only kills
	// after it count.
	oomBefore uint64
}

// ioDrainTimeout bounds how long an exit waits for the output pipes to
// close: a background process of the container may hold them open.
const ioDrainTimeout = 2 * time.Second

// closeStdin ends the container's stdin (stdin_once, or removal).
func (c *ctr) closeStdin() {
	c.stdinMu.Lock()
	defer c.stdinMu.Unlock()
	if c.stdin != nil {
		c.stdin.Close()
		c.stdin = nil
	}
}

func (s *server) lookup(id string) (*ctr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ctrs[id]
	if !ok {
		return nil, errkind.Errorf(errkind.NotFound, "container %s not found in pod %s", id, s.opts.PodID)
	}
	return c, nil
}

func (s *server) stateOf(c *ctr) shimapi.ContainerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.state
}

func (s *server) setState(c *ctr, fn func(*shimapi.ContainerState)) shimapi.ContainerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&c.state)
	s.changedLocked()
	return c.state
}

// create creates a container whose init waits for start. Its stdio are
// pipes (or a pty) held by the shim, so that the container's output is
// logged by the shim whether or not huskd runs.
func (s *server) create(a shimapi.CreateContainerArgs) (_ shimapi.ContainerState, retErr error) {
	s.mu.Lock()
	if _, ok := s.ctrs[a.ID]; ok {
		s.mu.Unlock()
		return shimapi.ContainerState{}, errkind.Errorf(errkind.AlreadyExists, "container %s exists in pod %s", a.ID, s.opts.PodID)
	}
	select {
	case <-s.stopping:
		s.mu.Unlock()
		return shimapi.ContainerState{}, errkind.Errorf(errkind.FailedPrecondition, "pod %s is stopping", s.opts.PodID)
	default:
	}
	// Stop waits for creations in flight, so that none escapes it.
	s.creating.Add(1)
	s.mu.Unlock()
	defer s.creating.Done()

	log, err := NewLogWriter(a.LogPath)
	if err != nil {
		return shimapi.ContainerState{}, fmt.Errorf("opening the log %s: %w", a.LogPath, err)
	}
	log.counts = &s.logs
	c := &ctr{id: a.ID, oomFile: a.OOMFile, bundle: a.Bundle, log: log, stdinOnce: a.StdinOnce, exited: make(chan struct{}), ioDone: make(chan struct{})}
	var closeOnErr, closeAfterStart []*os.File
	defer func() {
		for _, f := range closeAfterStart {
			f.Close()
		}
		if retErr != nil {
			for _, f := range closeOnErr {
				f.Close()
			}
			log.Close()
		}
	}()

	call := runcCall{args: []string{"create", "--id=" + a.ID, "--spec=" + filepath.Join(a.Bundle, "config.json")}}
	var stdinR *os.File
	if a.Stdin && !a.TTY {
		r, w, err := os.Pipe()
		if err != nil {
			return shimapi.ContainerState{}, err
		}
		stdinR, c.stdin = r, w
		closeAfterStart = append(closeAfterStart, r)
		closeOnErr = append(closeOnErr, w)
	} else {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return shimapi.ContainerState{}, err
		}
		stdinR = devnull
		closeAfterStart = append(closeAfterStart, devnull)
	}
	var outR, errR, consoleSock *os.File
	if a.TTY {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return shimapi.ContainerState{}, err
		}
		consoleSock = os.NewFile(uintptr(fds[0]), "console")
		theirs := os.NewFile(uintptr(fds[1]), "console-runc")
		closeAfterStart = append(closeAfterStart, consoleSock, theirs)
		call.stdio = []*os.File{stdinR, stdinR, stdinR}
		call.extra = []*os.File{theirs}
		call.args = append(call.args, "--console-socket-fd=4")
	} else {
		var outW, errW *os.File
		if outR, outW, err = os.Pipe(); err != nil {
			return shimapi.ContainerState{}, err
		}
		if errR, errW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			return shimapi.ContainerState{}, err
		}
		closeAfterStart = append(closeAfterStart, outW, errW)
		closeOnErr = append(closeOnErr, outR, errR)
		call.stdio = []*os.File{stdinR, outW, errW}
		call.args = append(call.args, "--inherit-stdio")
	}
	c.oomBefore, _ = readOOMKills(a.OOMFile)

	pid, err := s.runcPID(call)
	if err != nil {
		return shimapi.ContainerState{}, err
	}
	if a.TTY {
		master, err := shimapi.RecvFD(consoleSock, 10*time.Second)
		if err != nil {
			_ = s.runc(runcCall{args: []string{"delete", "--force", "--id=" + a.ID}})
			return shimapi.ContainerState{}, fmt.Errorf("receiving the container's terminal: %w", err)
		}
		c.console = master
		go func() {
			_ = log.Copy(StreamStdout, io.TeeReader(master, c.output.writer(StreamStdout)))
			close(c.ioDone)
		}()
	} else {
		var wg sync.WaitGroup
		wg.Add(2)
		for stream, r := range map[string]*os.File{StreamStdout: outR, StreamStderr: errR} {
			go func() {
				defer wg.Done()
				_ = log.Copy(stream, io.TeeReader(r, c.output.writer(stream)))
				r.Close()
			}()
		}
		go func() { wg.Wait(); close(c.ioDone) }()
	}

	c.state = shimapi.ContainerState{ID: a.ID, PID: pid, Status: shimapi.StatusCreated, CreatedAt: time.Now()}
	s.mu.Lock()
	s.ctrs[a.ID] = c
	s.changedLocked()
	st := c.state
	s.mu.Unlock()
	go s.waitExit(c, s.reaper.wait(pid))
	klog.InfoS("Container created", "podSandboxID", s.opts.PodID, "containerID", a.ID, "pid", pid)
	return st, nil
}

// waitExit records a container's exit: its code, when, and whether the
// kernel's OOM killer did it, read from the cgroup before anything removes
// it.
func (s *server) waitExit(c *ctr, exited <-chan unix.WaitStatus) {
	ws := <-exited
	finished := time.Now()
	select {
	case <-c.ioDone:
	case <-time.After(ioDrainTimeout):
	}
	oom, _ := readOOMKills(c.oomFile)
	code := exitCode(ws)
	st := s.setState(c, func(st *shimapi.ContainerState) {
		st.Status, st.ExitCode, st.FinishedAt = shimapi.StatusExited, code, finished
		switch {
		case oom > c.oomBefore:
			st.Reason = "OOMKilled"
		case code == 0:
			st.Reason = "Completed"
		case st.Reason == "":
			st.Reason = "Error"
		}
	})
	close(c.exited)
	klog.InfoS("Container exited", "podSandboxID", s.opts.PodID, "containerID", c.id, "exitCode", code, "reason", st.Reason)
}

// startContainer lets a created container run its process.
func (s *server) startContainer(id string) (shimapi.ContainerState, error) {
	c, err := s.lookup(id)
	if err != nil {
		return shimapi.ContainerState{}, err
	}
	if st := s.stateOf(c); st.Status != shimapi.StatusCreated {
		return st, errkind.Errorf(errkind.FailedPrecondition, "container %s is %s, not created", id, st.Status)
	}
	err = openExecFifo(filepath.Join(s.runcRoot(), id), c.exited)
	if errors.Is(err, fs.ErrNotExist) {
		err = s.runc(runcCall{args: []string{"start", "--id=" + id}})
	}
	if err != nil {
		// The init still waits for a start that will not come.
		_ = s.runc(runcCall{args: []string{"kill", "--signal=9", "--id=" + id}})
		s.setState(c, func(st *shimapi.ContainerState) {
			st.Reason, st.Message = "StartError", err.Error()
		})
		return s.stateOf(c), err
	}
	return s.setState(c, func(st *shimapi.ContainerState) {
		if st.Status == shimapi.StatusCreated {
			st.Status, st.StartedAt = shimapi.StatusRunning, time.Now()
		}
	}), nil
}

// stopContainer sends sig to the container's process and, if it is still
// there after timeout, SIGKILL to every process of the container.
func (s *server) stopContainer(a shimapi.StopContainerArgs) (shimapi.ContainerState, error) {
	c, err := s.lookup(a.ID)
	if err != nil {
		return shimapi.ContainerState{}, err
	}
	st := s.stateOf(c)
	if st.Status == shimapi.StatusExited {
		return st, nil
	}
	if a.Timeout > 0 && st.Status == shimapi.StatusRunning {
		sig := unix.Signal(a.Signal)
		if sig == 0 {
			sig = unix.SIGTERM
		}
		// The process is the shim's child and has not been reaped while
		// exited is open: its pid is still its own.
		_ = unix.Kill(st.PID, sig)
		select {
		case <-c.exited:
			return s.stateOf(c), nil
		case <-time.After(a.Timeout):
			klog.InfoS("Container did not stop in time; killing it", "podSandboxID", s.opts.PodID, "containerID", a.ID, "timeout", a.Timeout)
		}
	}
	if err := s.kill(c, 10*time.Second); err != nil {
		return s.stateOf(c), err
	}
	return s.stateOf(c), nil
}

// kill SIGKILLs every process of the container and waits for its init.
func (s *server) kill(c *ctr, timeout time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := s.runc(runcCall{args: []string{"kill", "--signal=9", "--id=" + c.id}}); err != nil {
		klog.ErrorS(err, "Killing container", "podSandboxID", s.opts.PodID, "containerID", c.id)
		_ = unix.Kill(s.stateOf(c).PID, unix.SIGKILL)
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(timeout):
		return errkind.Errorf(errkind.Deadline, "container %s still runs %s after SIGKILL", c.id, timeout)
	}
}

// destroy kills the container and removes its cgroup and libcontainer
// state; the shim keeps its record.
func (s *server) destroy(c *ctr, timeout time.Duration) error {
	err := s.kill(c, timeout)
	if err == nil && s.removeExited(c) {
		return nil
	}
	if derr := s.runc(runcCall{args: []string{"delete", "--force", "--timeout=" + timeout.String(), "--id=" + c.id}}); derr != nil {
		err = errors.Join(err, derr)
	}
	return err
}

// removeExited does what `husk-runc delete` does for a container whose
// processes are all gone, without starting husk-runc (most of a
// RemoveContainer's ~10 ms): it removes the container's cgroups, then
// libcontainer's state. It answers false, leaving what is left to delete,
// when a process may remain (a pod-wide PID namespace keeps the
// container's children alive after its init) or the cgroups cannot go
// (the container made cgroups of its own): delete --force handles those.
func (s *server) removeExited(c *ctr) bool {
	select {
	case <-c.exited:
	default:
		return false
	}
	dir := filepath.Join(s.runcRoot(), c.id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return true // deleted already
	}
	var st struct {
		CgroupPaths map[string]string `json:"cgroup_paths"`
	}
	if err != nil || json.Unmarshal(b, &st) != nil {
		return false
	}
	for _, p := range st.CgroupPaths {
		procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err == nil && len(bytes.TrimSpace(procs)) > 0 {
			return false
		}
	}
	for _, p := range st.CgroupPaths {
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			return false
		}
	}
	return os.RemoveAll(dir) == nil
}

// removeContainer destroys the container and forgets it.
func (s *server) removeContainer(id string) error {
	c, err := s.lookup(id)
	if err != nil {
		return nil // already gone: removal is idempotent
	}
	if err := s.destroy(c, 10*time.Second); err != nil {
		return err
	}
	c.closeStdin()
	select {
	case <-c.ioDone:
	case <-time.After(ioDrainTimeout):
	}
	if c.console != nil {
		c.console.Close()
	}
	c.log.Close()
	s.mu.Lock()
	delete(s.ctrs, id)
	s.changedLocked()
	s.mu.Unlock()
	klog.InfoS("Container removed", "podSandboxID", s.opts.PodID, "containerID", id)
	return nil
}

func (s *server) reopenLog(id string) error {
	c, err := s.lookup(id)
	if err != nil {
		return err
	}
	// api.proto: a runtime that refuses must not create a new log file.
	if st := s.stateOf(c); st.Status != shimapi.StatusRunning {
		return errkind.Errorf(errkind.FailedPrecondition, "container %s is %s: its log is not reopened", id, st.Status)
	}
	return c.log.Reopen()
}

func (s *server) update(a shimapi.UpdateArgs) error {
	c, err := s.lookup(a.ID)
	if err != nil {
		return err
	}
	if st := s.stateOf(c); st.Status == shimapi.StatusExited {
		return errkind.Errorf(errkind.FailedPrecondition, "container %s has exited", a.ID)
	}
	f := filepath.Join(c.bundle, "resources.json")
	if err := os.WriteFile(f, a.Resources, 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	// Requests are validated before they get here, so a failure is the
	// kernel refusing a value (a memory limit below what the container
	// uses: EBUSY); libcontainer has then written the old limits back.
	if err := s.runc(runcCall{args: []string{"update", "--id=" + a.ID, "--resources=" + f}}); err != nil {
		return errkind.Errorf(errkind.FailedPrecondition, "the new resources of container %s were not applied, it keeps its old ones: %v", a.ID, err)
	}
	return nil
}

// readOOMKills reads how many processes the OOM killer took from a
// container's cgroup: the oom_kill line of file (v1 memory.oom_control, v2
// memory.events; see shimapi.CreateContainerArgs.OOMFile). A cgroup that
// is gone, or no file named, counts 0.
func readOOMKills(file string) (uint64, error) {
	if file == "" {
		return 0, os.ErrNotExist
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range bytesLines(b) {
		if len(line) > 9 && string(line[:9]) == "oom_kill " {
			return strconv.ParseUint(string(line[9:]), 10, 64)
		}
	}
	return 0, nil
}

func bytesLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

func (v *service) CreateContainer(a shimapi.CreateContainerArgs, r *shimapi.ContainerState) error {
	st, err := v.s.create(a)
	*r = st
	return shimapi.EncodeError(err)
}

func (v *service) StartContainer(a shimapi.IDArgs, r *shimapi.ContainerState) error {
	st, err := v.s.startContainer(a.ID)
	*r = st
	return shimapi.EncodeError(err)
}

func (v *service) StopContainer(a shimapi.StopContainerArgs, r *shimapi.ContainerState) error {
	st, err := v.s.stopContainer(a)
	*r = st
	return shimapi.EncodeError(err)
}

func (v *service) RemoveContainer(a shimapi.IDArgs, _ *shimapi.Empty) error {
	return shimapi.EncodeError(v.s.removeContainer(a.ID))
}

func (v *service) ReopenLog(a shimapi.IDArgs, _ *shimapi.Empty) error {
	return shimapi.EncodeError(v.s.reopenLog(a.ID))
}

func (v *service) UpdateContainer(a shimapi.UpdateArgs, _ *shimapi.Empty) error {
	return shimapi.EncodeError(v.s.update(a))
}
