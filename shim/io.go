package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/shim/shimapi"
)

// listenIO opens the exec/attach socket (see shimapi.IOSocketName).
func (s *server) listenIO() (*net.UnixListener, error) {
	sock := filepath.Join(s.opts.Dir, shimapi.IOSocketName)
	_ = os.Remove(sock)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (s *server) serveIO(l *net.UnixListener) {
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		go s.handleIO(conn)
	}
}

// ioSession is the shim's side of one exec or attach connection. Its
// goroutines and buffers end with it, whatever comes first: the process's
// exit, a kill, or the caller hanging up.
type ioSession struct {
	conn *net.UnixConn
	wmu  sync.Mutex
	// ctl delivers the caller's controls; hup is closed when the caller
	// hangs up; done is closed when the session ends, so that a control
	// read as the session ends is dropped rather than held (the leak of
	// an exec whose kill raced its exit).
	ctl  chan shimapi.IOControl
	hup  chan struct{}
	done chan struct{}
}

// ioWriteTimeout bounds one event's write: a caller that stopped reading
// must not hold a session.
const ioWriteTimeout = 5 * time.Second

func (c *ioSession) send(ev shimapi.IOEvent) {
	// An error message is the only unbounded part of an event.
	if max := shimapi.MaxIOEvent / 2; len(ev.Error) > max {
		ev.Error = ev.Error[:max] + "..."
	}
	b, _ := json.Marshal(ev)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioWriteTimeout))
	_, _ = c.conn.Write(b)
}

// readControls delivers the caller's controls until it hangs up or the
// session ends. A control longer than MaxIOControl arrives truncated and
// is dropped as malformed.
func (c *ioSession) readControls() {
	defer close(c.hup)
	buf := make([]byte, shimapi.MaxIOControl)
	for {
		n, err := c.conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		var ctl shimapi.IOControl
		if json.Unmarshal(buf[:n], &ctl) != nil {
			continue
		}
		select {
		case c.ctl <- ctl:
		case <-c.done:
			return
		}
	}
}

func (s *server) handleIO(conn *net.UnixConn) {
	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	defer conn.Close()
	sess := &ioSession{conn: conn, ctl: make(chan shimapi.IOControl), hup: make(chan struct{}), done: make(chan struct{})}
	files, req, err := readIORequest(conn)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err != nil {
		sess.send(shimapi.IOEvent{Error: "bad IO request: " + err.Error()})
		return
	}
	// Ends the control reader: first done (a send in flight is dropped),
	// then the connection (a read in flight fails).
	defer func() {
		close(sess.done)
		conn.Close()
		<-sess.hup
	}()
	go sess.readControls()
	switch req.Op {
	case shimapi.OpExec:
		err = s.execSession(sess, req, files)
	case shimapi.OpAttach:
		err = s.attachSession(sess, req, files)
	default:
		err = fmt.Errorf("unknown IO operation %q", req.Op)
	}
	if err != nil {
		sess.send(shimapi.IOEvent{Error: err.Error(), NotRunning: errors.Is(err, errNotRunning)})
	}
}

// readIORequest reads a session's request and the descriptors sent with
// it; the descriptors are returned (to be closed) even with an error.
// An attach's are made non-blocking, so that the shim's copies of them
// are pollable: closing one ends a copy blocked on it, and write
// deadlines work. An exec's are made blocking: they become the process's
// stdio, and programs expect blocking stdio (head(1) fails with EAGAIN on
// a full non-blocking pipe).
func readIORequest(conn *net.UnixConn) ([]*os.File, shimapi.IORequest, error) {
	var req shimapi.IORequest
	buf := make([]byte, shimapi.MaxIORequest)
	oob := make([]byte, unix.CmsgSpace(4*4))
	// ReadMsgUnix passes MSG_CMSG_CLOEXEC on Linux: the descriptors are
	// never inheritable (as with shimapi.RecvFD).
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, req, err
	}
	fds, err := receivedFDs(oob[:oobn])
	if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		err = errors.New("request or descriptors truncated")
	}
	if err == nil {
		err = json.Unmarshal(buf[:n], &req)
	}
	files := make([]*os.File, 0, len(fds))
	for _, fd := range fds {
		_ = unix.SetNonblock(fd, req.Op == shimapi.OpAttach)
		files = append(files, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd)))
	}
	return files, req, err
}

// errNotRunning marks a session refused because its container is not
// running, which huskd reports as the caller's race, not as a failure.
var errNotRunning = errors.New("not running")

func receivedFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var all []int
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		all = append(all, fds...)
	}
	return all, nil
}

// takeFiles pops the descriptors flagged in req, in the order stdin,
// stdout, stderr; a missing one is nil.
func takeFiles(req shimapi.IORequest, files []*os.File) (stdin, stdout, stderr *os.File, err error) {
	next := func(want bool) *os.File {
		if !want || len(files) == 0 {
			return nil
		}
		f := files[0]
		files = files[1:]
		return f
	}
	stdin, stdout, stderr = next(req.Stdin), next(req.Stdout), next(req.Stderr)
	if (req.Stdin && stdin == nil) || (req.Stdout && stdout == nil) || (req.Stderr && stderr == nil) || len(files) != 0 {
		return nil, nil, nil, errors.New("the descriptors sent do not match the streams asked for")
	}
	return stdin, stdout, stderr, nil
}

func (s *server) runningCtr(id string) (*ctr, error) {
	select {
	case <-s.stopping:
		return nil, fmt.Errorf("pod %s is stopping, %w", s.opts.PodID, errNotRunning)
	default:
	}
	c, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	if st := s.stateOf(c); st.Status != shimapi.StatusRunning {
		return nil, fmt.Errorf("container %s is %s, %w", id, st.Status, errNotRunning)
	}
	return c, nil
}

// execSession runs a process in a container with the caller's descriptors
// as its stdio, reports its pid and then its exit. The caller hanging up
// (its timeout, or huskd gone) kills the process.
func (s *server) execSession(sess *ioSession, req shimapi.IORequest, files []*os.File) error {
	if len(req.Args) == 0 {
		return errors.New("exec: no command")
	}
	c, err := s.runningCtr(req.ID)
	if err != nil {
		return err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	call := runcCall{args: []string{"exec", "--id=" + req.ID, "--spec=" + filepath.Join(c.bundle, "config.json")}}
	if req.TTY {
		if len(files) != 1 {
			return errors.New("a terminal exec takes one descriptor: the console socket")
		}
		call.stdio = []*os.File{devnull, devnull, devnull}
		call.extra = files
		call.args = append(call.args, "--console-socket-fd=4",
			"--console-width="+strconv.Itoa(int(req.Width)), "--console-height="+strconv.Itoa(int(req.Height)))
	} else {
		stdin, stdout, stderr, err := takeFiles(req, files)
		if err != nil {
			return err
		}
		call.stdio = []*os.File{orFile(stdin, devnull), orFile(stdout, devnull), orFile(stderr, devnull)}
		call.args = append(call.args, "--inherit-stdio")
	}
	call.args = append(append(call.args, "--"), req.Args...)
	release, err := s.execTurn(sess.hup)
	if err != nil {
		return err
	}
	pid, err := s.runcPID(call)
	release()
	if err != nil {
		if !initAlive(s.stateOf(c).PID) {
			// Exited while runc joined its namespaces, before the
			// reaper told the shim.
			return fmt.Errorf("container %s exited: %w (%v)", req.ID, errNotRunning, err)
		}
		return err
	}
	// The caller's descriptors now belong to the process alone: the
	// shim's copies would keep its pipes open after it exits.
	for _, f := range files {
		f.Close()
	}
	exited := s.reaper.wait(pid)
	klog.V(4).InfoS("Exec started", "podSandboxID", s.opts.PodID, "containerID", req.ID, "pid", pid, "tty", req.TTY)
	sess.send(shimapi.IOEvent{PID: pid})
	hup := sess.hup
	for {
		select {
		case ws := <-exited:
			sess.send(shimapi.IOEvent{Exited: true, ExitCode: exitCode(ws)})
			return nil
		case m := <-sess.ctl:
			if m.Kill {
				s.reaper.kill(pid)
			}
		case <-hup:
			// The caller's timeout, or huskd gone: what it started goes.
			s.reaper.kill(pid)
			hup = nil
		}
	}
}

// maxStartingExecs bounds the execs being started at once in one pod: each
// start is a husk-runc process of its own (~10 MiB), and probes chosen by
// the pod's author decide how many arrive together.
const maxStartingExecs = 8

// execTurn waits for one of the pod's exec starts, or for the caller to
// hang up; release gives the turn back.
func (s *server) execTurn(hup <-chan struct{}) (release func(), err error) {
	s.execStartsOnce.Do(func() { s.execStarts = make(chan struct{}, maxStartingExecs) })
	select {
	case s.execStarts <- struct{}{}:
		return func() { <-s.execStarts }, nil
	case <-hup:
		return nil, errors.New("exec: the caller hung up before the process started")
	}
}

func orFile(f, otherwise *os.File) *os.File {
	if f != nil {
		return f
	}
	return otherwise
}

// attachSession joins the caller to a running container's stdio: its
// output is copied to the caller's descriptors as the log gets it, the
// caller's input goes to its stdin, and resizes to its terminal. It ends
// with the container (after its output) or when the caller hangs up.
func (s *server) attachSession(sess *ioSession, req shimapi.IORequest, files []*os.File) error {
	stdin, stdout, stderr, err := takeFiles(req, files)
	if err != nil {
		return err
	}
	c, err := s.runningCtr(req.ID)
	if err != nil {
		return err
	}
	c.stdinMu.Lock()
	noStdin := c.stdin == nil
	c.stdinMu.Unlock()
	if stdin != nil && noStdin && c.console == nil {
		return fmt.Errorf("container %s has no stdin (not created with stdin, or its stdin_once stdin was closed)", req.ID)
	}
	if req.TTY != (c.console != nil) {
		return fmt.Errorf("container %s has tty=%t; attach asked for tty=%t", req.ID, c.console != nil, req.TTY)
	}
	subs := c.output.subscribe(stdout, stderr)
	defer c.output.unsubscribe(subs)
	if stdin != nil {
		stop, err := s.copyStdin(c, stdin)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.console != nil && req.Width > 0 && req.Height > 0 {
		_ = resize(c.console, req.Width, req.Height)
	}
	sess.send(shimapi.IOEvent{PID: s.stateOf(c).PID})
	for {
		select {
		case <-c.exited:
			select {
			case <-c.ioDone:
			case <-time.After(ioDrainTimeout):
			}
			c.output.unsubscribe(subs)
			sess.send(shimapi.IOEvent{Exited: true, ExitCode: s.stateOf(c).ExitCode})
			return nil
		case <-sess.hup:
			return nil
		case ctl := <-sess.ctl:
			if ctl.Width > 0 && ctl.Height > 0 && c.console != nil {
				_ = resize(c.console, ctl.Width, ctl.Height)
			}
		}
	}
}

// copyStdin copies an attached caller's input to the container's stdin
// (its terminal, with a tty) until either side ends. It writes to a
// duplicate of the container's end, so that stop can end a copy blocked
// on either side (a caller that sends nothing, a container that reads
// nothing) by closing both of its ends, without closing the container's
// stdin for anyone else. stop returns once the copy has ended.
func (s *server) copyStdin(c *ctr, stdin *os.File) (stop func(), err error) {
	c.stdinMu.Lock()
	target := c.stdin
	if c.console != nil {
		target = c.console
	}
	var in *os.File
	if target == nil {
		err = fmt.Errorf("container %s has no stdin any more", c.id)
	} else {
		in, err = dupFile(target)
	}
	c.stdinMu.Unlock()
	if err != nil {
		return nil, err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(in, stdin)
		// The duplicate first: the container sees its stdin end only
		// once every write end is closed.
		in.Close()
		// kubelet's stdin_once: the container's stdin ends with the
		// first attach's.
		if c.stdinOnce && c.console == nil {
			c.closeStdin()
		}
	}()
	return func() {
		stdin.Close()
		in.Close()
		<-copied
	}, nil
}

// dupFile duplicates a pollable descriptor (close-on-exec); the copy
// shares its non-blocking mode, so it is pollable too, and closing it ends
// a read or write blocked on it.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	cerr := rc.Control(func(orig uintptr) {
		fd, err = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err = errors.Join(cerr, err); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// resize sets a terminal's size (through SyscallConn: Fd would switch the
// descriptor to blocking mode under the goroutine that logs its output).
func resize(tty *os.File, width, height uint16) error {
	rc, err := tty.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
	})
	return errors.Join(cerr, err)
}

// initAlive tells whether a container's init still runs: a zombie has no
// namespaces left to join.
func initAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	return err == nil
}
