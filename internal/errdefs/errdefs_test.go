package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCode(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
	}{
		{nil, codes.OK},
		{InvalidArgument("f", "bad"), codes.InvalidArgument},
		{fmt.Errorf("outer: %w", NotFound("x")), codes.NotFound},
		{AlreadyExists("x"), codes.AlreadyExists},
		{FailedPrecondition("x"), codes.FailedPrecondition},
		{Unavailable("x"), codes.Unavailable},
		{fmt.Errorf("x: %w", ErrUnimplemented), codes.Unimplemented},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{status.Error(codes.ResourceExhausted, "x"), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", ErrUnauthenticated), codes.Unauthenticated},
		{fmt.Errorf("x: %w", ErrPermissionDenied), codes.PermissionDenied},
		{fmt.Errorf("x: %w", ErrDeadline), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", ErrResourceExhausted), codes.ResourceExhausted},
		{ResourceExhausted("layer over max_layer_bytes"), codes.ResourceExhausted},
		{&fs.PathError{Op: "write", Path: "/var/lib/husk/images/tmp/blob", Err: syscall.ENOSPC}, codes.ResourceExhausted},
		{fmt.Errorf("writing the image index: %w", &os.LinkError{Op: "rename", Err: syscall.EDQUOT}), codes.ResourceExhausted},
		{&fs.PathError{Op: "write", Err: syscall.EIO}, codes.Unknown},
		{errors.New("x"), codes.Unknown},
	}
	for _, c := range cases {
		if got := Code(c.err); got != c.code {
			t.Errorf("Code(%v) = %v, want %v", c.err, got, c.code)
		}
	}
	if got := status.Convert(ToGRPC(InvalidArgument("config.hostname", "too long"))); got.Message() != "config.hostname: too long" {
		t.Errorf("message %q", got.Message())
	}
}
