package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/shim/shimapi"
)

// MaxExecOutput caps each of ExecSync's streams, as kubelet caps what it
// keeps of a probe's output; the rest is read and dropped, so that the
// process is never blocked on a full pipe.
const MaxExecOutput = 16 << 20

// execDrain is how long ExecSync keeps reading after the process exited.
// What the process wrote is already in the pipe and comes at once; only a
// background child that inherited the pipe keeps it open, and it must not
// hold the call (kubernetes#92057).
const execDrain = 200 * time.Millisecond

// killWait bounds the wait for a killed exec's exit.
const killWait = 5 * time.Second

// ExecResult is what ExecSync returns.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Running resolves an ID or unique prefix to a running container;
// FailedPrecondition when it is not running.
func (m *Manager) Running(id string) (*Container, error) {
	c, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	if c.State.Status != shimapi.StatusRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s, not running", c.ID, c.State.Status)
	}
	return c, nil
}

// ioSocket is the shim's IO socket for c; Unavailable while the shim has
// not answered since a restart (sandbox.ShimAnswers).
func (m *Manager) ioSocket(c *Container) (string, error) {
	if err := m.sandboxes.ShimAnswers(c.PodID); err != nil {
		return "", err
	}
	return filepath.Join(m.sandboxes.StateDir(c.PodID), shimapi.IOSocketName), nil
}

// ExecSync runs cmd in a running container and returns its output and exit
// code. With a timeout, the process is killed at the deadline and the
// error wraps context.DeadlineExceeded; the container is not touched.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	c, err := m.Running(id)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req := shimapi.IORequest{Op: shimapi.OpExec, ID: c.ID, Args: cmd}
	var stdout, stderr cappedBuffer
	p, err := newStdioPipes(&req, nil, &stdout, &stderr)
	if err != nil {
		return nil, err
	}
	defer p.close()
	sock, err := m.ioSocket(c)
	if err != nil {
		return nil, err
	}
	sess, err := shimapi.StartIO(ctx, sock, req, p.theirs)
	p.sent()
	if err != nil {
		return nil, execError(ctx, c, timeout, err)
	}
	defer sess.Close()
	p.copy(nil)
	killed := waitOrKill(ctx, sess)
	p.drain()
	if killed != nil {
		return nil, execError(ctx, c, timeout, killed)
	}
	code, err := sess.ExitCode()
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	if stdout.dropped+stderr.dropped > 0 {
		klog.InfoS("ExecSync output over the cap dropped", "podSandboxID", c.PodID, "containerID", c.ID,
			"stdoutDropped", stdout.dropped, "stderrDropped", stderr.dropped)
	}
	return &ExecResult{Stdout: stdout.b, Stderr: stderr.b, ExitCode: code}, nil
}

// drain lets the readers take what is in the pipes and stops them after
// execDrain, whoever else holds the pipes open.
func drain(wg *sync.WaitGroup, rs ...*os.File) {
	deadline := time.Now().Add(execDrain)
	for _, r := range rs {
		_ = r.SetReadDeadline(deadline)
	}
	wg.Wait()
}

func execError(ctx context.Context, c *Container, timeout time.Duration, err error) error {
	var notRunning *shimapi.NotRunningError
	if errors.As(err, &notRunning) {
		return errdefs.FailedPrecondition("%s", notRunning.Msg)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
		return fmt.Errorf("command in container %s timed out after %s: %w", c.ID, timeout, context.DeadlineExceeded)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("exec in container %s: %w", c.ID, ctx.Err())
	}
	return fmt.Errorf("exec in container %s: %w", c.ID, err)
}

// cappedBuffer keeps the first MaxExecOutput bytes written to it and
// counts the rest.
type cappedBuffer struct {
	b       []byte
	dropped int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	room := MaxExecOutput - len(c.b)
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		c.b = append(c.b, p[:room]...)
	}
	c.dropped += int64(len(p) - room)
	return len(p), nil
}

// TerminalSize is a terminal's size, as the streaming server reports
// resizes.
type TerminalSize struct{ Width, Height uint16 }

// Exec runs cmd in a running container with the caller's streams (any of
// them may be nil) and returns when it has exited and its output has been
// copied, or ctx is done (the process is then killed). With tty, the
// process gets a terminal whose output goes to out, and resize changes its
// size. A non-zero exit is an *ExitError.
func (m *Manager) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	c, err := m.Running(id)
	if err != nil {
		return err
	}
	req := shimapi.IORequest{Op: shimapi.OpExec, ID: c.ID, Args: cmd, TTY: tty}
	if tty {
		return m.execTTY(ctx, c, req, in, out, resize)
	}
	p, err := newStdioPipes(&req, in, out, errOut)
	if err != nil {
		return err
	}
	defer p.close()
	sock, err := m.ioSocket(c)
	if err != nil {
		return err
	}
	sess, err := shimapi.StartIO(ctx, sock, req, p.theirs)
	p.sent()
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	defer sess.Close()
	klog.V(4).InfoS("Exec session started", "podSandboxID", c.PodID, "containerID", c.ID, "pid", sess.PID())
	p.copy(in)
	return m.finishSession(ctx, c, sess, p.drain)
}

// execTTY runs an exec with a terminal: the shim sends the request's
// console socket on to libcontainer, which sends the terminal's master
// back over it, here.
func (m *Manager) execTTY(ctx context.Context, c *Container, req shimapi.IORequest, in io.Reader, out io.Writer, resize <-chan TerminalSize) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console-shim")
	defer mine.Close()
	// The first size, if the client sent one already, saves a resize.
	select {
	case sz := <-resize:
		req.Width, req.Height = sz.Width, sz.Height
	default:
	}
	sock, err := m.ioSocket(c)
	if err != nil {
		return err
	}
	sess, err := shimapi.StartIO(ctx, sock, req, []*os.File{theirs})
	theirs.Close()
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	defer sess.Close()
	master, err := shimapi.RecvFD(mine, 10*time.Second)
	if err != nil {
		_ = sess.Kill()
		return fmt.Errorf("exec in container %s: receiving its terminal: %w", c.ID, err)
	}
	defer master.Close()
	ended := make(chan struct{})
	defer close(ended)
	go forwardResizes(resize, ended, func(sz TerminalSize) {
		if err := setWinsize(master, sz); err != nil {
			klog.V(2).InfoS("Resizing an exec terminal", "containerID", c.ID, "err", err)
		}
	})
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// EIO once the process and its children have closed the
		// terminal: that is its end.
		_, _ = io.Copy(out, master)
	}()
	return m.finishSession(ctx, c, sess, func() {
		select {
		case <-copied:
		case <-time.After(execDrain):
		}
	})
}

// finishSession waits for the exec'd process (killing it if ctx ends
// first), then for its output, and turns its exit into an error.
func (m *Manager) finishSession(ctx context.Context, c *Container, sess *shimapi.IOSession, waitOutput func()) error {
	killed := waitOrKill(ctx, sess)
	waitOutput()
	if killed != nil {
		return fmt.Errorf("exec in container %s: %w", c.ID, killed)
	}
	code, err := sess.ExitCode()
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	klog.V(4).InfoS("Exec session ended", "podSandboxID", c.PodID, "containerID", c.ID, "exitCode", code)
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// waitOrKill waits for the session's process to exit; if ctx ends first,
// it kills the process, waits a bounded time for the exit, and returns
// ctx's error.
func waitOrKill(ctx context.Context, sess *shimapi.IOSession) error {
	select {
	case <-sess.Done():
		return nil
	case <-ctx.Done():
	}
	_ = sess.Kill()
	select {
	case <-sess.Done():
	case <-time.After(killWait):
	}
	return ctx.Err()
}

// forwardResizes applies the client's resizes until they end or the
// session does (a nil channel, which a session without a terminal may get,
// never ends by itself).
func forwardResizes(resize <-chan TerminalSize, ended <-chan struct{}, apply func(TerminalSize)) {
	for {
		select {
		case sz, ok := <-resize:
			if !ok {
				return
			}
			apply(sz)
		case <-ended:
			return
		}
	}
}

// ExitError is a process's non-zero exit; the streaming server reports its
// code to the client.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("command exited with code %d", e.Code) }

// Exited, ExitStatus and String make it a k8s.io/utils/exec.ExitError,
// which the streaming library reports to the client with the code.
func (e *ExitError) Exited() bool    { return true }
func (e *ExitError) ExitStatus() int { return e.Code }
func (e *ExitError) String() string  { return e.Error() }

func setWinsize(tty *os.File, sz TerminalSize) error {
	rc, err := tty.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: sz.Width, Row: sz.Height})
	})
	return errors.Join(cerr, err)
}

// Attach joins the caller's streams to a running container's: its output
// from now on, its stdin (the container must have been created with
// stdin), its terminal's size. It returns when the container exits or ctx
// ends.
func (m *Manager) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	c, err := m.Running(id)
	if err != nil {
		return err
	}
	if in != nil && !c.Config.GetStdin() {
		return errdefs.FailedPrecondition("container %s was not created with stdin: nothing to attach it to", c.ID)
	}
	if tty != c.Config.GetTty() {
		return errdefs.FailedPrecondition("container %s has tty=%t; attach asked for tty=%t", c.ID, c.Config.GetTty(), tty)
	}
	req := shimapi.IORequest{Op: shimapi.OpAttach, ID: c.ID, TTY: tty}
	p, err := newStdioPipes(&req, in, out, errOut)
	if err != nil {
		return err
	}
	defer p.close()
	select {
	case sz := <-resize:
		req.Width, req.Height = sz.Width, sz.Height
	default:
	}
	sock, err := m.ioSocket(c)
	if err != nil {
		return err
	}
	sess, err := shimapi.StartIO(ctx, sock, req, p.theirs)
	p.sent()
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", c.ID, err)
	}
	defer sess.Close()
	ended := make(chan struct{})
	defer close(ended)
	go forwardResizes(resize, ended, func(sz TerminalSize) { _ = sess.Resize(sz.Width, sz.Height) })
	// The streaming library does not cancel ctx when a client hangs up
	// (the connection is hijacked): a stream of the caller's ending is
	// how a hang-up shows. As containerd does, the session ends with the
	// caller's stdin, except for stdin_once without a terminal, where
	// the container's stdin ends with it and its output goes on.
	hungUp := make(chan struct{})
	var hangUp sync.Once
	streamEnded := func(keep bool) {
		if !keep {
			hangUp.Do(func() { close(hungUp) })
		}
	}
	stdinOnce := c.Config.GetStdinOnce() && !tty
	p.copyThen(in, func(err error) { streamEnded(err == nil && stdinOnce) }, func(err error) { streamEnded(err == nil) })
	select {
	case <-sess.Done():
		// The shim closed its ends after the last output.
		p.wg.Wait()
	case <-ctx.Done():
		sess.Close()
		p.drain()
	case <-hungUp:
		sess.Close()
		p.drain()
	}
	return nil
}

// stdioPipes are the pipes of a session without a terminal: the ends sent
// to the shim (theirs) and huskd's, copied to and from the caller.
type stdioPipes struct {
	theirs  []*os.File
	stdin   *os.File // huskd's end of the process's stdin
	readers []*os.File
	writers []io.Writer
	wg      sync.WaitGroup
}

// newStdioPipes makes a pipe for each stream the caller has, and marks
// them in req.
func newStdioPipes(req *shimapi.IORequest, in io.Reader, out, errOut io.Writer) (_ *stdioPipes, err error) {
	p := &stdioPipes{}
	defer func() {
		if err != nil {
			p.sent()
			p.close()
		}
	}()
	if in != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.theirs, p.stdin, req.Stdin = append(p.theirs, r), w, true
	}
	for _, s := range []struct {
		w    io.Writer
		want *bool
	}{{out, &req.Stdout}, {errOut, &req.Stderr}} {
		if s.w == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.theirs, *s.want = append(p.theirs, w), true
		p.readers, p.writers = append(p.readers, r), append(p.writers, s.w)
	}
	return p, nil
}

// sent closes huskd's copies of the shim's ends: the pipes must close when
// the process's side does.
func (p *stdioPipes) sent() {
	for _, f := range p.theirs {
		f.Close()
	}
	p.theirs = nil
}

// copy starts copying the caller's input in (ending the process's stdin
// when it ends) and the process's output out.
func (p *stdioPipes) copy(in io.Reader) { p.copyThen(in, nil, nil) }

// copyThen is copy, calling inEnded when the input's copy ends and
// outEnded when an output's does (with nil at the end of the input or of
// the process's output, or the error that stopped it).
func (p *stdioPipes) copyThen(in io.Reader, inEnded, outEnded func(error)) {
	if p.stdin != nil {
		go func() {
			_, err := io.Copy(p.stdin, in)
			p.stdin.Close()
			if inEnded != nil {
				inEnded(err)
			}
		}()
	}
	for i, r := range p.readers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_, err := io.Copy(p.writers[i], r)
			if outEnded != nil {
				outEnded(err)
			}
		}()
	}
}

// drain stops the output copies once what is in the pipes is out.
func (p *stdioPipes) drain() { drain(&p.wg, p.readers...) }

func (p *stdioPipes) close() {
	if p.stdin != nil {
		p.stdin.Close()
	}
	for _, r := range p.readers {
		r.Close()
	}
}
