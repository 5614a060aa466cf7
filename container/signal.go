package container

import (
	"github.com/moby/sys/signal"

	"github.com/huskrt/husk/internal/errdefs"
)

// signalNumber parses a signal as an image's STOPSIGNAL or the CRI writes
// it: "SIGTERM", "TERM", "term", "15", "SIGRTMIN+3", "RTMAX-2", with
// moby/sys/signal's parser, the one Docker and containerd read STOPSIGNAL
// with, so an image stops the same way under each. The parser takes any
// number; only the platform's signals pass (1-31, 34-64 on Linux: glibc
// keeps 32 and 33 for itself).
func signalNumber(s string) (int, error) {
	sig, err := signal.ParseSignal(s)
	if err != nil || sig <= 0 || !signal.ValidSignalForPlatform(sig) {
		return 0, errdefs.InvalidArgument("stop_signal", "%q is not a signal", s)
	}
	return int(sig), nil
}
