package image

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"testing"

	"github.com/huskrt/husk/image/hosts"
	"github.com/huskrt/husk/internal/errdefs"
	"google.golang.org/grpc/codes"
)

// What a pull's error becomes: the node's own full disk is not the
// registry's fault, however the library wrapped the write.
func TestClassify(t *testing.T) {
	h := hosts.Host{Scheme: "https", Host: "registry.test"}
	cases := []struct {
		name string
		err  error
		code codes.Code
	}{
		{"a full disk while writing a blob", fmt.Errorf("fetching: %w", &fs.PathError{Op: "write", Path: "tmp/blob-1", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{"over quota", &fs.PathError{Op: "mkdir", Path: "tmp/unpack-1", Err: syscall.EDQUOT}, codes.ResourceExhausted},
		{"a refused connection", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, codes.Unavailable},
		{"another local error", &fs.PathError{Op: "write", Path: "tmp/blob-1", Err: syscall.EIO}, codes.Unknown},
		{"a digest mismatch", fmt.Errorf("blob: %w", ErrDigestMismatch), codes.Unknown},
		{"no progress", errNoProgress{}, codes.DeadlineExceeded},
		{"plain", errors.New("x"), codes.Unknown},
	}
	for _, c := range cases {
		if got := errdefs.Code(classify(c.err, h)); got != c.code {
			t.Errorf("%s: classify(%v) is %v, want %v", c.name, c.err, got, c.code)
		}
	}
}
