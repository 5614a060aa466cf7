package shimapi

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// RecvFD receives one descriptor sent over the unix socket sock (a
// blocking one, as unix.Socketpair makes), waiting at most timeout: how
// the shim and huskd take a terminal's master from libcontainer's console
// socket.
//
// The descriptor arrives close-on-exec (MSG_CMSG_CLOEXEC): set afterwards,
// a process started in between (the husk-runc of a concurrent call)
// would inherit it, and a pty master held by a stranger keeps the
// terminal open. It is made non-blocking, so that the *os.File is pollable
// and closing it ends a copy blocked on it. A message with anything but
// one descriptor is refused, and what came with it closed.
func RecvFD(sock *os.File, timeout time.Duration) (*os.File, error) {
	fd := int(sock.Fd())
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no descriptor within %s", timeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	// Room for a few, so that a sender of more is seen and refused.
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, flags, _, err := unix.Recvmsg(fd, make([]byte, 4096), oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	for i := range msgs {
		if got, perr := unix.ParseUnixRights(&msgs[i]); perr == nil {
			fds = append(fds, got...)
		}
	}
	if err == nil && (len(fds) != 1 || flags&unix.MSG_CTRUNC != 0) {
		err = fmt.Errorf("expected one descriptor, got %d", len(fds))
	}
	if err == nil {
		err = unix.SetNonblock(fds[0], true)
	}
	if err != nil {
		for _, d := range fds {
			unix.Close(d)
		}
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "received-fd"), nil
}
