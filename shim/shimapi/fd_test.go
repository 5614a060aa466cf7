package shimapi

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketpair returns the two ends of a blocking unix stream socketpair, as
// the shim and huskd make for libcontainer's console socket.
func socketpair(t *testing.T) (mine, theirs *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs = os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	t.Cleanup(func() { mine.Close(); theirs.Close() })
	return mine, theirs
}

func send(t *testing.T, sock *os.File, files ...*os.File) {
	t.Helper()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A received descriptor is close-on-exec from the moment it exists (issue
// 14: the shim set it after recvmsg, and a concurrent husk-runc start
// inherited a pty master in between), and pollable.
func TestRecvFDCloseOnExec(t *testing.T) {
	mine, theirs := socketpair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	send(t, theirs, r)

	got, err := RecvFD(mine, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	rc, err := got.SyscallConn() // unlike Fd, leaves it non-blocking
	if err != nil {
		t.Fatal(err)
	}
	var fdFlags, flFlags int
	if cerr := rc.Control(func(fd uintptr) {
		if fdFlags, err = unix.FcntlInt(fd, unix.F_GETFD, 0); err == nil {
			flFlags, err = unix.FcntlInt(fd, unix.F_GETFL, 0)
		}
	}); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	if fdFlags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor lacks FD_CLOEXEC (flags %#x)", fdFlags)
	}
	if flFlags&unix.O_NONBLOCK == 0 {
		t.Errorf("received descriptor is blocking (flags %#x): closing it would not end a read", flFlags)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if n, err := got.Read(b); n != 1 || b[0] != 'x' {
		t.Errorf("read %d %q (%v) through the received descriptor, want x", n, b[:n], err)
	}
}

// Two descriptors where one is expected are refused and closed: none of
// them stays open in the receiver (the old receivers returned an error
// and kept both, in the shim without close-on-exec).
func TestRecvFDRefusesAndClosesExtras(t *testing.T) {
	mine, theirs := socketpair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before := openFDs(t)
	send(t, theirs, r, w)
	if f, err := RecvFD(mine, 5*time.Second); err == nil {
		f.Close()
		t.Fatal("two descriptors received as one")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the refused message, %d before: the extras leaked", after, before)
	}
}

func TestRecvFDTimeout(t *testing.T) {
	mine, _ := socketpair(t)
	start := time.Now()
	if f, err := RecvFD(mine, 50*time.Millisecond); err == nil {
		f.Close()
		t.Fatal("received a descriptor nobody sent")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 50ms", d)
	}
}
