// Package errkind holds the error kinds of package errdefs without their
// gRPC mapping. husk-shim carries kinds across its boundary to huskd but
// must not link grpc (it is paid once per pod; conformance/arch_test.go),
// so the kinds live here and errdefs names the same values. Code of huskd
// uses errdefs.
package errkind

//lint:file-ignore ST1012 the kinds are named for the gRPC codes they become; errdefs names them ErrX

import (
	"errors"
	"fmt"
	"syscall"
)

// The kinds. Wrap them with %w, or use Errorf; compare with errors.Is.
var (
	InvalidArgument    = errors.New("invalid argument")
	NotFound           = errors.New("not found")
	AlreadyExists      = errors.New("already exists")
	FailedPrecondition = errors.New("failed precondition")
	Unavailable        = errors.New("unavailable")
	Unimplemented      = errors.New("not implemented")
	Unauthenticated    = errors.New("unauthenticated")
	PermissionDenied   = errors.New("permission denied")
	Deadline           = errors.New("deadline exceeded")
	ResourceExhausted  = errors.New("resource exhausted")
)

// Errorf returns an error of kind whose message is the formatted text
// alone: a client reads "container x not found", and the code says the
// rest.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// NoSpace says whether err is the kernel's ENOSPC or EDQUOT: the node's
// disk (or the quota of husk's root) is full. It is a ResourceExhausted
// wherever it comes from, an image blob, a container's record or a
// bundle; retrying helps only once space is freed.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
