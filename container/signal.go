package container

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/internal/errdefs"
)

// signalNumber parses a signal as an image's STOPSIGNAL or the CRI writes
// it: "SIGTERM", "TERM", "15", "SIGRTMIN+3".
func signalNumber(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if base, off, ok := strings.Cut(name, "+"); ok && base == "SIGRTMIN" {
		if n, err := strconv.Atoi(off); err == nil && n >= 0 && 34+n <= 64 {
			return 34 + n, nil
		}
	}
	if n := unix.SignalNum(name); n != 0 {
		return int(n), nil
	}
	return 0, errdefs.InvalidArgument("stop_signal", "%q is not a signal", s)
}
