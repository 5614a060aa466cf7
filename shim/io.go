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

// ioSession is the shim's side of one exec or attach connection.
type ioSession struct {
	conn *net.UnixConn
	wmu  sync.Mutex
}

func (c *ioSession) send(ev shimapi.IOEvent) {
	b, _ := json.Marshal(ev)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.conn.Write(b)
}

// controls delivers the caller's controls, and closes the channel when the
// caller hangs up.
func (c *ioSession) controls() <-chan shimapi.IOControl {
	ch := make(chan shimapi.IOControl)
	go func() {
		defer close(ch)
		buf := make([]byte, shimapi.MaxIOMessage)
		for {
			n, err := c.conn.Read(buf)
			if err != nil || n == 0 {
				return
			}
			var ctl shimapi.IOControl
			if json.Unmarshal(buf[:n], &ctl) == nil {
				ch <- ctl
			}
		}
	}()
	return ch
}

func (s *server) handleIO(conn *net.UnixConn) {
	defer conn.Close()
	sess := &ioSession{conn: conn}
	buf := make([]byte, shimapi.MaxIOMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files, ferr := receivedFiles(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if ferr == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		ferr = errors.New("request or descriptors truncated")
	}
	var req shimapi.IORequest
	if ferr == nil {
		ferr = json.Unmarshal(buf[:n], &req)
	}
	if ferr != nil {
		sess.send(shimapi.IOEvent{Error: "bad IO request: " + ferr.Error()})
		return
	}
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

// errNotRunning marks a session refused because its container is not
// running, which huskd reports as the caller's race, not as a failure.
var errNotRunning = errors.New("not running")

func receivedFiles(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd)))
		}
	}
	return files, nil
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
	pid, err := s.runcPID(call)
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
	// A pidfd, so that a kill can never hit a reused pid.
	pidfd, perr := unix.PidfdOpen(pid, 0)
	if perr == nil {
		defer unix.Close(pidfd)
	}
	kill := func() {
		if perr == nil {
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		}
	}
	klog.V(4).InfoS("Exec started", "podSandboxID", s.opts.PodID, "containerID", req.ID, "pid", pid, "tty", req.TTY)
	sess.send(shimapi.IOEvent{PID: pid})
	ctl := sess.controls()
	for {
		select {
		case ws := <-exited:
			sess.send(shimapi.IOEvent{Exited: true, ExitCode: exitCode(ws)})
			return nil
		case m, ok := <-ctl:
			if !ok {
				kill()
				ctl = nil
				continue
			}
			if m.Kill {
				kill()
			}
		}
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
		c.stdinMu.Lock()
		in := c.stdin
		c.stdinMu.Unlock()
		if c.console != nil {
			in = c.console
		}
		go func() {
			_, _ = io.Copy(in, stdin)
			// kubelet's stdin_once: the container's stdin ends with the
			// first attach's.
			if c.stdinOnce && c.console == nil {
				c.closeStdin()
			}
		}()
	}
	if c.console != nil && req.Width > 0 && req.Height > 0 {
		_ = resize(c.console, req.Width, req.Height)
	}
	sess.send(shimapi.IOEvent{PID: s.stateOf(c).PID})
	ctl := sess.controls()
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
		case ctl, ok := <-ctl:
			if !ok {
				return nil
			}
			if ctl.Width > 0 && ctl.Height > 0 && c.console != nil {
				_ = resize(c.console, ctl.Width, ctl.Height)
			}
		}
	}
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
