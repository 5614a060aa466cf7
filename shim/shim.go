// Package shim is the body of husk-shim: the one long-lived process per pod.
// It is the parent of the pod's processes (a child subreaper: they are
// re-parented to it when the husk-runc helper that started them exits),
// learns their exit status, and outlives huskd. huskd reaches it over a unix
// socket in the pod's state directory (see package shimapi).
//
// It deliberately links no libcontainer: every container operation runs in
// a short-lived husk-runc process, so the shim's own memory stays that of a
// small Go program for the pod's whole life.
//
// Lifecycle of a shim:
//
//	started by huskd ──▶ husk-runc run (the pause) ──▶ Ready on SyncFD ──▶ serves RPC
//	                          │ failure                                      │ Stop
//	                          ▼                                              ▼
//	                   Ready{Error}, undo, exit 1        kill, husk-runc delete, reply, exit 0
package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/shim/shimapi"
)

// Options are what huskd passes on the shim's command line.
type Options struct {
	PodID    string
	Dir      string // the pod's state directory
	RuncPath string // the husk-runc binary
	Version  string
}

// Run starts the pod's pause, reports on shimapi.SyncFD, and serves huskd
// until it is told to stop. It returns when the shim should exit.
func Run(opts Options) error {
	syncPipe := os.NewFile(shimapi.SyncFD, "sync")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		_ = report(syncPipe, shimapi.Ready{Error: "becoming a child subreaper: " + err.Error()})
		return err
	}
	s := &server{
		opts:      opts,
		reaper:    newReaper(),
		pauseDone: make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	l, err := s.start()
	if err != nil {
		_ = report(syncPipe, shimapi.Ready{Error: err.Error()})
		return err
	}
	if err := report(syncPipe, shimapi.Ready{ShimPID: os.Getpid(), PausePID: s.pauseState().PID}); err != nil {
		// huskd died before it learned of this pod: nobody will ever stop
		// it, and the restarted huskd rolls the pod back. Undo our part.
		klog.ErrorS(err, "Reporting to huskd failed; undoing the pod", "podSandboxID", opts.PodID)
		l.Close()
		return errors.Join(err, s.stop(10*time.Second))
	}
	return s.serve(l)
}

func report(f *os.File, r shimapi.Ready) error {
	err := json.NewEncoder(f).Encode(r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type server struct {
	opts   Options
	reaper *reaper

	mu        sync.Mutex
	pause     shimapi.ProcessState // guarded by mu
	pauseDone chan struct{}        // closed when the pause has exited

	stopOnce sync.Once
	stopped  chan struct{} // closed once Stop has done its work
	conns    sync.WaitGroup
}

func (s *server) pauseState() shimapi.ProcessState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pause
}

func (s *server) runcRoot() string { return filepath.Join(s.opts.Dir, shimapi.RuncRoot) }

// runc runs one husk-runc operation to completion. Its stderr goes to the
// shim's log; result, when not nil, receives what it writes on fd 3.
func (s *server) runc(result *bytes.Buffer, args ...string) error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	files := []*os.File{devnull, os.Stderr, os.Stderr}
	var r, w *os.File
	if result != nil {
		if r, w, err = os.Pipe(); err != nil {
			return err
		}
		defer r.Close()
		files = append(files, w)
	}
	_, exited, err := s.reaper.start(s.opts.RuncPath, append([]string{"--root=" + s.runcRoot()}, args...), files)
	if w != nil {
		w.Close()
	}
	if err != nil {
		return fmt.Errorf("starting husk-runc: %w", err)
	}
	if r != nil {
		_, _ = result.ReadFrom(r)
	}
	if ws := <-exited; exitCode(ws) != 0 {
		return fmt.Errorf("husk-runc %s exited with code %d", args[0], exitCode(ws))
	}
	return nil
}

// start runs the pause and listens on the pod's socket. On failure nothing
// it created is left: no container state, cgroup, process or socket.
func (s *server) start() (_ net.Listener, retErr error) {
	var out bytes.Buffer
	err := s.runc(&out, "run", "--id="+s.opts.PodID, "--spec="+filepath.Join(s.opts.Dir, shimapi.PauseSpecName))
	var res struct {
		PID   int    `json:"pid"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr == nil && res.Error != "" {
		return nil, errors.New(res.Error)
	}
	if err != nil {
		return nil, err
	}
	if res.PID <= 0 {
		return nil, fmt.Errorf("husk-runc run reported no pid: %q", out.String())
	}
	defer func() {
		if retErr != nil {
			_ = s.stop(10 * time.Second)
		}
	}()
	s.mu.Lock()
	s.pause = shimapi.ProcessState{PID: res.PID, Running: true}
	s.mu.Unlock()
	go s.waitPause(s.reaper.wait(res.PID))

	sock := filepath.Join(s.opts.Dir, shimapi.SocketName)
	_ = os.Remove(sock) // a stale socket of a dead shim of this pod
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.opts.Dir, shimapi.PidName), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		l.Close()
		return nil, err
	}
	klog.InfoS("Pause started", "podSandboxID", s.opts.PodID, "pid", res.PID)
	return l, nil
}

func (s *server) waitPause(exited <-chan unix.WaitStatus) {
	ws := <-exited
	s.mu.Lock()
	s.pause.Running = false
	s.pause.ExitCode = exitCode(ws)
	s.pause.ExitedAt = time.Now()
	s.mu.Unlock()
	close(s.pauseDone)
	klog.InfoS("Pause exited", "podSandboxID", s.opts.PodID, "exitCode", exitCode(ws))
}

// serve answers huskd until Stop has run and its callers have hung up (or
// a second has passed), so that the reply to Stop reaches huskd.
func (s *server) serve(l net.Listener) error {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Shim", &service{s: s}); err != nil {
		return err
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				srv.ServeCodec(jsonrpc.NewServerCodec(conn))
			}()
		}
	}()
	<-s.stopped
	l.Close()
	_ = os.Remove(filepath.Join(s.opts.Dir, shimapi.SocketName))
	_ = os.Remove(filepath.Join(s.opts.Dir, shimapi.PidName))
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return nil
}

// stop kills the pause (and with it a shared PID namespace), then has
// husk-runc kill whatever is left in its cgroup and remove its state. Safe
// to call more than once.
func (s *server) stop(timeout time.Duration) error {
	var err error
	s.stopOnce.Do(func() {
		defer close(s.stopped)
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		// The pause is the shim's child, and the reaper has not collected
		// it while Running is true, so its pid cannot have been reused.
		s.mu.Lock()
		if s.pause.Running {
			_ = unix.Kill(s.pause.PID, unix.SIGKILL)
		}
		s.mu.Unlock()
		select {
		case <-s.pauseDone:
		case <-time.After(timeout):
			err = fmt.Errorf("pause did not exit %s after SIGKILL", timeout)
			return
		}
		err = s.runc(nil, "delete", "--force", "--timeout="+timeout.String(), "--id="+s.opts.PodID)
	})
	return err
}

// service is what net/rpc exposes as "Shim".
type service struct{ s *server }

func (v *service) Info(_ shimapi.Empty, r *shimapi.InfoReply) error {
	*r = shimapi.InfoReply{ShimPID: os.Getpid(), Version: v.s.opts.Version, Pause: v.s.pauseState()}
	return nil
}

func (v *service) WaitPause(_ shimapi.Empty, r *shimapi.ProcessState) error {
	<-v.s.pauseDone
	*r = v.s.pauseState()
	return nil
}

func (v *service) Stop(a shimapi.StopArgs, _ *shimapi.Empty) error {
	klog.InfoS("Stopping pod", "podSandboxID", v.s.opts.PodID)
	return v.s.stop(a.Timeout)
}
