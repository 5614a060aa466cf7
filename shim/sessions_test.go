package shim

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/shim/shimapi"
)

func seqpacketPair(t *testing.T) (mine, theirs *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "seqpacket")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// A control that arrives as the session ends (a kill racing the exit) is
// dropped: the reader must not wait for ever to hand it over.
func TestSessionDropsControlsAfterItEnds(t *testing.T) {
	mine, theirs := seqpacketPair(t)
	sess := &ioSession{conn: mine, ctl: make(chan shimapi.IOControl), hup: make(chan struct{}), done: make(chan struct{})}
	go sess.readControls()
	b, _ := json.Marshal(shimapi.IOControl{Kill: true})
	if _, err := theirs.Write(b); err != nil {
		t.Fatal(err)
	}
	close(sess.done) // nobody reads sess.ctl any more
	if !closedWithin(sess.hup, 5*time.Second) {
		t.Fatal("the control reader is still waiting to deliver a control after its session ended")
	}
}

// The reader ends when the caller hangs up, and an oversized control is
// dropped, not delivered half.
func TestSessionControlsEndWithTheCaller(t *testing.T) {
	mine, theirs := seqpacketPair(t)
	sess := &ioSession{conn: mine, ctl: make(chan shimapi.IOControl), hup: make(chan struct{}), done: make(chan struct{})}
	go sess.readControls()
	big, _ := json.Marshal(map[string]any{"width": 3, "pad": string(make([]byte, 2*shimapi.MaxIOControl))})
	ok, _ := json.Marshal(shimapi.IOControl{Width: 7, Height: 8})
	for _, b := range [][]byte{big, ok} {
		if _, err := theirs.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case c := <-sess.ctl:
		if c.Width != 7 || c.Height != 8 {
			t.Errorf("first control delivered: %+v; want the 7x8 resize (the oversized one dropped)", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no control delivered")
	}
	theirs.Close()
	if !closedWithin(sess.hup, 5*time.Second) {
		t.Fatal("the caller hung up and the session did not see it")
	}
}

// Exec starts take turns, and a caller that hangs up while it waits for
// one gives up its place.
func TestExecsWaitForATurn(t *testing.T) {
	s := &server{}
	never := make(chan struct{})
	var releases []func()
	for range maxStartingExecs {
		release, err := s.execTurn(never)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	hup := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		_, err := s.execTurn(hup)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("exec %d started while %d were starting: %v", maxStartingExecs+1, maxStartingExecs, err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hup)
	if err := <-got; err == nil {
		t.Fatal("a caller that hung up while waiting got a turn")
	}
	releases[0]()
	release, err := s.execTurn(never)
	if err != nil {
		t.Fatalf("no turn after one was given back: %v", err)
	}
	release()
}

// An attach's stdin copy ends when the session does, whichever side it is
// blocked on (a container that reads nothing, a caller that sends
// nothing), and leaves the container's stdin open for the next caller.
func TestAttachStdinEndsWithTheSession(t *testing.T) {
	for _, deaf := range []bool{true, false} {
		name := map[bool]string{true: "container reads nothing", false: "caller sends nothing"}[deaf]
		t.Run(name, func(t *testing.T) { attachStdinEnds(t, deaf) })
	}
}

func attachStdinEnds(t *testing.T, deafContainer bool) {
	ctrR, ctrW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ctrR.Close()
	c := &ctr{id: "c", stdin: ctrW}
	defer c.closeStdin()
	callerR, callerW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer callerW.Close()
	// The caller's stdin arrives as huskd sends it: passed over the IO
	// socket, blocking (huskd's Fd() made it so).
	mine, theirs := seqpacketPair(t)
	req, _ := json.Marshal(shimapi.IORequest{Op: shimapi.OpAttach, ID: "c", Stdin: true})
	if _, _, err := theirs.WriteMsgUnix(req, unix.UnixRights(int(callerR.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	callerR.Close()
	files, _, err := readIORequest(mine)
	if err != nil || len(files) != 1 {
		t.Fatalf("receiving the caller's stdin: %d files, %v", len(files), err)
	}
	stop, err := (&server{}).copyStdin(c, files[0])
	if err != nil {
		t.Fatal(err)
	}
	if deafContainer {
		// More than the container's pipe holds: the copy blocks on it
		// once the pipe is full.
		go func() { _, _ = callerW.Write(make([]byte, 1<<20)) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := unix.IoctlGetInt(int(ctrR.Fd()), unix.TIOCINQ)
			if err != nil {
				t.Fatal(err)
			}
			if n >= 64<<10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the container's stdin holds %d bytes; the copy never filled it", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	} else {
		// A line through, so that the copy is back waiting on the caller.
		if _, err := callerW.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(ctrR, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	if !closedWithin(stopped, 5*time.Second) {
		t.Fatal("the stdin copy of an ended session is still blocked")
	}
	if deafContainer {
		if _, err := io.ReadFull(ctrR, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
	}
	c.stdinMu.Lock()
	_, err = c.stdin.Write([]byte("x"))
	c.stdinMu.Unlock()
	if err != nil {
		t.Errorf("the container's stdin after the session: %v; want it open", err)
	}
}

// The reaper signals only a child it has not collected: once a pid's exit
// is delivered the pid may belong to anyone.
func TestReaperSignalsOnlyUncollectedChildren(t *testing.T) {
	r := newReaper()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	pid, exited, err := r.start("/bin/sleep", []string{"100"}, []*os.File{devnull, devnull, devnull})
	if err != nil {
		t.Fatal(err)
	}
	r.kill(pid)
	select {
	case ws := <-exited:
		if exitCode(ws) != 128+int(unix.SIGKILL) {
			t.Errorf("exit code %d, want %d", exitCode(ws), 128+int(unix.SIGKILL))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child was not killed")
	}
	// Neither a collected child nor a process that is not a child waited
	// for is signalled. (Were it, this test's own process would die.)
	r.kill(pid)
	r.kill(os.Getpid())
}

// An exec's descriptors become the process's stdio and must be blocking
// (whatever the sender's mode); an attach's stay with the shim and must be
// pollable.
func TestReceivedDescriptorModes(t *testing.T) {
	for _, c := range []struct {
		op          string
		nonblocking bool
	}{{shimapi.OpExec, false}, {shimapi.OpAttach, true}} {
		var p [2]int
		// Sent in the opposite mode to the one wanted.
		flags := unix.O_CLOEXEC
		if !c.nonblocking {
			flags |= unix.O_NONBLOCK
		}
		if err := unix.Pipe2(p[:], flags); err != nil {
			t.Fatal(err)
		}
		mine, theirs := seqpacketPair(t)
		req, _ := json.Marshal(shimapi.IORequest{Op: c.op, ID: "c", Stdout: true})
		if _, _, err := theirs.WriteMsgUnix(req, unix.UnixRights(p[1]), nil); err != nil {
			t.Fatal(err)
		}
		unix.Close(p[1])
		files, _, err := readIORequest(mine)
		if err != nil || len(files) != 1 {
			t.Fatalf("%s: %d files, %v", c.op, len(files), err)
		}
		fl, err := unix.FcntlInt(files[0].Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := fl&unix.O_NONBLOCK != 0; got != c.nonblocking {
			t.Errorf("%s: received descriptor non-blocking %t, want %t", c.op, got, c.nonblocking)
		}
		files[0].Close()
		unix.Close(p[0])
	}
}
