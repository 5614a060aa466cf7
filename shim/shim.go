// Package shim is the body of husk-shim: the one long-lived process per pod.
// It is the parent of the pod's processes (a child subreaper: they are
// re-parented to it when the husk-runc helper that started them exits),
// holds their stdio, writes their CRI logs, learns their exit status, and
// outlives huskd. huskd reaches it over a unix socket in the pod's state
// directory (see package shimapi).
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
//	                   Ready{Error}, undo, exit 1     kill all, husk-runc delete, reply, exit 0
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
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/runc/result"
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
		ctrs:      map[string]*ctr{},
		changed:   make(chan struct{}),
		pauseDone: make(chan struct{}),
		stopping:  make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	if !waitForGo() {
		klog.InfoS("huskd gave the pod up before its pause was started", "podSandboxID", opts.PodID)
		return nil
	}
	l, err := s.start()
	if err != nil {
		_ = report(syncPipe, shimapi.Ready{Error: err.Error()})
		return err
	}
	if err := report(syncPipe, shimapi.Ready{ShimPID: os.Getpid(), PausePID: s.pausePID()}); err != nil {
		// huskd died before it learned of this pod: nobody will ever stop
		// it, and the restarted huskd rolls the pod back. Undo our part.
		klog.ErrorS(err, "Reporting to huskd failed; undoing the pod", "podSandboxID", opts.PodID)
		l.Close()
		s.ioListener.Close()
		_, serr := s.stop(10 * time.Second)
		return errors.Join(err, serr)
	}
	return s.serve(l)
}

// waitForGo says whether huskd sent the byte on shimapi.GoFD that lets the
// pause start, rather than closing it.
func waitForGo() bool {
	f := os.NewFile(shimapi.GoFD, "go")
	defer f.Close()
	var b [1]byte
	n, _ := f.Read(b[:])
	return n == 1
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

	mu      sync.Mutex
	pause   shimapi.ProcessState // guarded by mu
	ctrs    map[string]*ctr      // guarded by mu
	seq     uint64               // guarded by mu
	changed chan struct{}        // closed and replaced on every change

	pauseDone chan struct{} // closed when the pause has exited

	stopOnce  sync.Once
	stopping  chan struct{}  // closed when Stop begins: no new container
	creating  sync.WaitGroup // container creations in flight
	stopped   chan struct{}  // closed once Stop has done its work
	finalSnap shimapi.Snapshot
	stopErr   error
	conns     sync.WaitGroup

	ioListener *net.UnixListener // exec and attach sessions
	sessions   atomic.Int64      // exec and attach sessions open
	logs       logCounts         // what the containers' logs wrote

	execStartsOnce sync.Once
	execStarts     chan struct{} // a token per exec being started
}

func (s *server) pausePID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pause.PID
}

func (s *server) runcRoot() string { return filepath.Join(s.opts.Dir, shimapi.RuncRoot) }

// runcCall is one husk-runc operation.
type runcCall struct {
	args []string
	// stdio, when set, are descriptors 0-2 of husk-runc (and of the
	// container it creates); otherwise /dev/null, and the shim's log for
	// stderr.
	stdio []*os.File
	// extra are descriptors 4 and up (3 is the result pipe).
	extra []*os.File
	// result, when set, receives what husk-runc writes on descriptor 3.
	result *bytes.Buffer
}

// runc runs one husk-runc operation to completion.
func (s *server) runc(c runcCall) error {
	files := c.stdio
	if files == nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer devnull.Close()
		files = []*os.File{devnull, os.Stderr, os.Stderr}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	files = append(append(files, w), c.extra...)
	_, exited, err := s.reaper.start(s.opts.RuncPath, append([]string{"--root=" + s.runcRoot()}, c.args...), files)
	w.Close()
	if err != nil {
		return fmt.Errorf("starting husk-runc: %w", err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	if c.result != nil {
		*c.result = out
	}
	ws := <-exited
	if exitCode(ws) != 0 {
		if res, err := result.Read(out.Bytes()); err == nil && res.Error != "" {
			return errors.New(res.Error)
		}
		return fmt.Errorf("husk-runc %s exited with code %d (see %s)", c.args[0], exitCode(ws), shimapi.LogName)
	}
	return nil
}

// runcPID runs a husk-runc operation that reports a pid.
func (s *server) runcPID(c runcCall) (int, error) {
	var out bytes.Buffer
	c.result = &out
	if err := s.runc(c); err != nil {
		return 0, err
	}
	res, err := result.Read(out.Bytes())
	if err != nil || res.PID <= 0 {
		return 0, fmt.Errorf("husk-runc %s reported no pid: %q", c.args[0], out.String())
	}
	return res.PID, nil
}

// start runs the pause and listens on the pod's socket. On failure nothing
// it created is left: no container state, cgroup, process or socket.
func (s *server) start() (_ net.Listener, retErr error) {
	pid, err := s.runcPID(runcCall{args: []string{"run", "--id=" + s.opts.PodID, "--spec=" + filepath.Join(s.opts.Dir, shimapi.PauseSpecName)}})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.pause = shimapi.ProcessState{PID: pid, Running: true}
	s.mu.Unlock()
	go s.waitPause(s.reaper.wait(pid))
	defer func() {
		if retErr != nil {
			_, _ = s.stop(10 * time.Second)
		}
	}()

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
	il, err := s.listenIO()
	if err != nil {
		l.Close()
		return nil, err
	}
	s.ioListener = il
	if err := os.WriteFile(filepath.Join(s.opts.Dir, shimapi.PidName), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		l.Close()
		il.Close()
		return nil, err
	}
	s.mu.Lock()
	s.changedLocked()
	s.mu.Unlock()
	klog.InfoS("Pause started", "podSandboxID", s.opts.PodID, "pid", pid)
	return l, nil
}

func (s *server) waitPause(exited <-chan unix.WaitStatus) {
	ws := <-exited
	s.mu.Lock()
	s.pause.Running = false
	s.pause.ExitCode = exitCode(ws)
	s.pause.ExitedAt = time.Now()
	s.changedLocked()
	s.mu.Unlock()
	close(s.pauseDone)
	klog.InfoS("Pause exited", "podSandboxID", s.opts.PodID, "exitCode", exitCode(ws))
}

// snapshotLocked is the state of every process; s.mu must be held.
func (s *server) snapshotLocked() shimapi.Snapshot {
	snap := shimapi.Snapshot{Seq: s.seq, Pause: s.pause, Containers: make([]shimapi.ContainerState, 0, len(s.ctrs)), Logs: s.logs.read()}
	for _, c := range s.ctrs {
		snap.Containers = append(snap.Containers, c.state)
	}
	return snap
}

// changedLocked records a change: a new sequence number, the snapshot
// written to ContainersFile (so that huskd finds it even if this shim
// dies), and every Wait woken. s.mu must be held.
func (s *server) changedLocked() {
	s.seq++
	b, err := json.Marshal(s.snapshotLocked())
	if err == nil {
		p := filepath.Join(s.opts.Dir, shimapi.ContainersFile)
		// State lives in tmpfs: a rename is atomic and fsync buys nothing.
		if err = os.WriteFile(p+".tmp", b, 0o600); err == nil {
			err = os.Rename(p+".tmp", p)
		}
	}
	if err != nil {
		klog.ErrorS(err, "Writing the pod's state", "podSandboxID", s.opts.PodID)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// serve answers huskd until Stop has run and its callers have hung up (or
// a second has passed), so that the reply to Stop reaches huskd.
func (s *server) serve(l net.Listener) error {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Shim", &service{s: s}); err != nil {
		return err
	}
	go s.serveIO(s.ioListener)
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
	s.ioListener.Close()
	_ = os.Remove(filepath.Join(s.opts.Dir, shimapi.SocketName))
	_ = os.Remove(filepath.Join(s.opts.Dir, shimapi.IOSocketName))
	_ = os.Remove(filepath.Join(s.opts.Dir, shimapi.PidName))
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return nil
}

// stop kills every container and then the pause (and with it a shared PID
// namespace), and has husk-runc remove their cgroups and state. Safe to
// call more than once; every call returns the final snapshot.
func (s *server) stop(timeout time.Duration) (shimapi.Snapshot, error) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		close(s.stopping)
		s.mu.Unlock()
		s.creating.Wait()
		defer close(s.stopped)
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		s.mu.Lock()
		var ctrs []*ctr
		for _, c := range s.ctrs {
			ctrs = append(ctrs, c)
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		errs := make([]error, len(ctrs))
		for i, c := range ctrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.destroy(c, timeout)
			}()
		}
		wg.Wait()

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
			errs = append(errs, fmt.Errorf("pause did not exit %s after SIGKILL", timeout))
		}
		errs = append(errs, s.runc(runcCall{args: []string{"delete", "--force", "--timeout=" + timeout.String(), "--id=" + s.opts.PodID}}))
		s.stopErr = errors.Join(errs...)
		s.mu.Lock()
		s.finalSnap = s.snapshotLocked()
		s.mu.Unlock()
	})
	return s.finalSnap, s.stopErr
}

// service is what net/rpc exposes as "Shim".
type service struct{ s *server }

func (v *service) Info(_ shimapi.Empty, r *shimapi.InfoReply) error {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	*r = shimapi.InfoReply{ShimPID: os.Getpid(), Version: v.s.opts.Version, Snapshot: v.s.snapshotLocked()}
	return nil
}

func (v *service) WaitPause(_ shimapi.Empty, r *shimapi.ProcessState) error {
	<-v.s.pauseDone
	v.s.mu.Lock()
	*r = v.s.pause
	v.s.mu.Unlock()
	return nil
}

// Wait answers once the state has changed past a.After.
func (v *service) Wait(a shimapi.WaitArgs, r *shimapi.Snapshot) error {
	for {
		v.s.mu.Lock()
		if v.s.seq > a.After {
			*r = v.s.snapshotLocked()
			v.s.mu.Unlock()
			return nil
		}
		ch := v.s.changed
		v.s.mu.Unlock()
		select {
		case <-ch:
		case <-v.s.stopped:
			v.s.mu.Lock()
			*r = v.s.snapshotLocked()
			v.s.mu.Unlock()
			return nil
		}
	}
}

func (v *service) Stop(a shimapi.StopArgs, r *shimapi.Snapshot) error {
	klog.InfoS("Stopping pod", "podSandboxID", v.s.opts.PodID)
	snap, err := v.s.stop(a.Timeout)
	*r = snap
	return shimapi.EncodeError(err)
}
