package container

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/internal/errdefs"
)

// The forms an image's STOPSIGNAL and the CRI's stop_signal take, as
// moby/sys/signal (Docker's and containerd's parser) reads them.
func TestSignalNumber(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"SIGTERM": unix.SIGTERM, "TERM": unix.SIGTERM, "term": unix.SIGTERM, "sigquit": unix.SIGQUIT,
		"15": unix.SIGTERM, "9": unix.SIGKILL, "SIGWINCH": unix.SIGWINCH,
		"SIGRTMIN": 34, "RTMIN+3": 37, "SIGRTMIN+3": 37, "SIGRTMAX": 64, "SIGRTMAX-2": 62, "64": 64,
		"SIGIOT": unix.SIGABRT, "SIGPOLL": unix.SIGIO,
	} {
		if got, err := signalNumber(in); err != nil || got != int(want) {
			t.Errorf("signalNumber(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "-15", "65", "4096", "SIGNOPE", "SIG", "RTMIN+31", "SIGRTMIN-1", "32", "33", " 15", "15.0", "SIGTERM "} {
		if got, err := signalNumber(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("signalNumber(%q) = %d, %v; want InvalidArgument", in, got, err)
		}
	}
}
