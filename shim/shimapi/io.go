package shimapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IOSocketName is the shim's second socket (SOCK_SEQPACKET, mode 0600),
// for exec and attach. They need what net/rpc cannot carry: descriptors
// (the caller's pipes or terminal socket travel with the request, so the
// process writes straight to huskd and no byte passes through the shim),
// and a session that lasts as long as the process. One connection is one
// session: the request, then the shim's events, and the caller's
// controls; a caller that hangs up kills what it started.
const IOSocketName = "io.sock"

// IO operations.
const (
	OpExec   = "exec"
	OpAttach = "attach"
)

// IORequest opens a session. The descriptors sent with it are, in order,
// stdin (read end), stdout and stderr (write ends) for each of Stdin,
// Stdout and Stderr that is set; an exec with TTY sends one instead: a
// unix socket on which the process's terminal master is sent back.
type IORequest struct {
	Op string `json:"op"`
	ID string `json:"id"` // the container
	// Args is the command of an exec.
	Args   []string `json:"args,omitempty"`
	TTY    bool     `json:"tty,omitempty"`
	Stdin  bool     `json:"stdin,omitempty"`
	Stdout bool     `json:"stdout,omitempty"`
	Stderr bool     `json:"stderr,omitempty"`
	// Width and Height are the terminal's initial size, if known.
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// IOEvent is what the shim sends on a session: first the pid (of the
// exec'd process, or the attached container's) or an error; then, once,
// the exit. An attach session that the caller ends gets no exit.
type IOEvent struct {
	PID      int    `json:"pid,omitempty"`
	Exited   bool   `json:"exited,omitempty"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
	// NotRunning says the error is the container's state, not the
	// request: it is not running (exited, or its pod is stopping).
	NotRunning bool `json:"notRunning,omitempty"`
}

// NotRunningError is the shim refusing a session because the container
// is not running: the caller raced its exit, which is no fault of husk.
type NotRunningError struct{ Msg string }

func (e *NotRunningError) Error() string { return e.Msg }

// IOControl is what the caller sends during a session.
type IOControl struct {
	// Kill SIGKILLs an exec'd process.
	Kill bool `json:"kill,omitempty"`
	// Width and Height, when set, resize the attached container's terminal.
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// Bounds of the messages of a session. A request carries an exec's
// command (the kernel's own limit on one argument is 128 KiB); events and
// controls are small, and are read into buffers of their size for as long
// as the session lasts, so that an idle session costs little.
const (
	MaxIORequest = 1 << 20
	MaxIOEvent   = 16 << 10
	MaxIOControl = 1 << 10
)

// IOSession is one exec or attach, from the caller's side.
type IOSession struct {
	conn *net.UnixConn
	pid  int

	done     chan struct{}
	exitCode int
	exitErr  error
	wmu      sync.Mutex
}

// StartIO opens a session on the shim's IO socket, sending files with the
// request; they may be closed once StartIO returns. It returns once the
// process runs (or the container is attached).
func StartIO(ctx context.Context, socketPath string, req IORequest, files []*os.File) (*IOSession, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", socketPath)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	b, err := json.Marshal(req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sending the %s request: %w", req.Op, err)
	}
	// A caller that gives up (its deadline, or its client gone) stops
	// waiting for the start; the shim sees the hang-up and undoes it.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	ev, err := readEvent(conn)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("the shim's answer to %s: %w", req.Op, err)
	}
	if ev.Error != "" {
		conn.Close()
		if ev.NotRunning {
			return nil, &NotRunningError{Msg: ev.Error}
		}
		return nil, errors.New(ev.Error)
	}
	s := &IOSession{conn: conn, pid: ev.PID, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			ev, err := readEvent(conn)
			if err != nil {
				s.exitErr = fmt.Errorf("session ended without an exit: %w", err)
				return
			}
			if ev.Exited {
				s.exitCode = ev.ExitCode
				return
			}
		}
	}()
	return s, nil
}

func readEvent(conn *net.UnixConn) (IOEvent, error) {
	buf := make([]byte, MaxIOEvent)
	n, err := conn.Read(buf)
	if err != nil {
		return IOEvent{}, err
	}
	if n == 0 {
		return IOEvent{}, errors.New("connection closed")
	}
	var ev IOEvent
	if err := json.Unmarshal(buf[:n], &ev); err != nil {
		return IOEvent{}, err
	}
	return ev, nil
}

// PID is the exec'd process, or the attached container's init.
func (s *IOSession) PID() int { return s.pid }

// Done is closed when the session has ended: the process exited, or the
// shim went away.
func (s *IOSession) Done() <-chan struct{} { return s.done }

// ExitCode is the process's exit code once Done is closed, or why none
// came.
func (s *IOSession) ExitCode() (int, error) {
	<-s.done
	return s.exitCode, s.exitErr
}

func (s *IOSession) send(c IOControl) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err = s.conn.Write(b)
	return err
}

// Kill SIGKILLs the exec'd process; its exit follows on Done.
func (s *IOSession) Kill() error { return s.send(IOControl{Kill: true}) }

// Resize sets the attached container's terminal size.
func (s *IOSession) Resize(width, height uint16) error {
	return s.send(IOControl{Width: width, Height: height})
}

// Close ends the session; an exec'd process that still runs is killed.
func (s *IOSession) Close() error { return s.conn.Close() }
