// Package errdefs holds the error kinds that husk's packages wrap at the
// source (fmt.Errorf("...: %w", errdefs.ErrNotFound)) and that the CRI server
// turns into gRPC codes in exactly one place. Nothing else should decide a
// gRPC code.
package errdefs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huskrt/husk/internal/errdefs/errkind"
)

// The kinds. Wrap them with %w; compare with errors.Is. They are the
// values of package errkind, which husk-shim uses without grpc, so that a
// kind the shim reports (shimapi decodes it) is the same kind here.
var (
	ErrInvalidArgument    = errkind.InvalidArgument
	ErrNotFound           = errkind.NotFound
	ErrAlreadyExists      = errkind.AlreadyExists
	ErrFailedPrecondition = errkind.FailedPrecondition
	ErrUnavailable        = errkind.Unavailable
	ErrUnimplemented      = errkind.Unimplemented
	ErrUnauthenticated    = errkind.Unauthenticated
	ErrPermissionDenied   = errkind.PermissionDenied
	// ErrDeadline is a deadline of husk's own (a stalled pull), as opposed
	// to the caller's context.DeadlineExceeded.
	ErrDeadline = errkind.Deadline
	// ErrResourceExhausted is content over one of the node's limits (an
	// image larger than the store takes): retrying the same will not help.
	ErrResourceExhausted = errkind.ResourceExhausted
)

// InvalidArgument returns an ErrInvalidArgument whose message names what was
// wrong; field is the request field at fault, in the proto's snake_case.
func InvalidArgument(field, format string, args ...any) error {
	return errkind.Errorf(ErrInvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// NotFound returns an ErrNotFound error with the given message.
func NotFound(format string, args ...any) error {
	return errkind.Errorf(ErrNotFound, format, args...)
}

// AlreadyExists returns an ErrAlreadyExists error with the given message.
func AlreadyExists(format string, args ...any) error {
	return errkind.Errorf(ErrAlreadyExists, format, args...)
}

// FailedPrecondition returns an ErrFailedPrecondition error with the given message.
func FailedPrecondition(format string, args ...any) error {
	return errkind.Errorf(ErrFailedPrecondition, format, args...)
}

// ResourceExhausted returns an ErrResourceExhausted error with the given
// message, which should name the limit.
func ResourceExhausted(format string, args ...any) error {
	return errkind.Errorf(ErrResourceExhausted, format, args...)
}

// Unavailable returns an ErrUnavailable error with the given message.
func Unavailable(format string, args ...any) error {
	return errkind.Errorf(ErrUnavailable, format, args...)
}

// NoSpace says whether err is the kernel's ENOSPC or EDQUOT, which Code
// makes ResourceExhausted.
func NoSpace(err error) bool { return errkind.NoSpace(err) }

// Code is the gRPC code for err: the kind it wraps, or the context error it
// wraps, or Unknown.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, ErrUnimplemented):
		return codes.Unimplemented
	case errors.Is(err, ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, ErrPermissionDenied):
		return codes.PermissionDenied
	case errors.Is(err, ErrDeadline):
		return codes.DeadlineExceeded
	case errors.Is(err, ErrResourceExhausted), errkind.NoSpace(err):
		return codes.ResourceExhausted
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// ToGRPC turns err into a gRPC status error with Code(err) and err's message.
// A status error passes through unchanged.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}
