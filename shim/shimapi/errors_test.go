package shimapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"syscall"
	"testing"

	"github.com/huskrt/husk/internal/errdefs/errkind"
)

func TestErrorRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		err  error
		kind error // nil: no kind
		text string
	}{
		{"not found", errkind.Errorf(errkind.NotFound, "container c1 not found in pod p1"), errkind.NotFound, "container c1 not found in pod p1"},
		{"invalid argument", errkind.Errorf(errkind.InvalidArgument, "bad"), errkind.InvalidArgument, "bad"},
		{"already exists", errkind.Errorf(errkind.AlreadyExists, "container c1 exists in pod p1"), errkind.AlreadyExists, "container c1 exists in pod p1"},
		{"not running", errkind.Errorf(errkind.FailedPrecondition, "container c1 is exited: its log is not reopened"), errkind.FailedPrecondition, "container c1 is exited: its log is not reopened"},
		{"unavailable", errkind.Errorf(errkind.Unavailable, "x"), errkind.Unavailable, "x"},
		{"unimplemented", fmt.Errorf("y: %w", errkind.Unimplemented), errkind.Unimplemented, "y: not implemented"},
		{"unauthenticated", errkind.Errorf(errkind.Unauthenticated, "x"), errkind.Unauthenticated, "x"},
		{"permission denied", errkind.Errorf(errkind.PermissionDenied, "x"), errkind.PermissionDenied, "x"},
		{"timed out", errkind.Errorf(errkind.Deadline, "container c1 still runs 10s after SIGKILL"), errkind.Deadline, "container c1 still runs 10s after SIGKILL"},
		{"context deadline", fmt.Errorf("waiting: %w", context.DeadlineExceeded), errkind.Deadline, "waiting: context deadline exceeded"},
		{"resource exhausted", errkind.Errorf(errkind.ResourceExhausted, "x"), errkind.ResourceExhausted, "x"},
		{"a full disk", fmt.Errorf("writing config.json: %w", &fs.PathError{Op: "write", Path: "config.json", Err: syscall.ENOSPC}), errkind.ResourceExhausted, "writing config.json: write config.json: no space left on device"},
		{"wrapped kind keeps the whole text", fmt.Errorf("stopping: %w", errkind.Errorf(errkind.NotFound, "c1 gone")), errkind.NotFound, "stopping: c1 gone"},
		{"joined: the first kind", errors.Join(errors.New("husk-runc failed"), errkind.Errorf(errkind.Deadline, "still runs")), errkind.Deadline, "husk-runc failed\nstill runs"},
		{"no kind", errors.New("husk-runc update exited with code 1"), nil, "husk-runc update exited with code 1"},
		{"brackets of no kind stay text", errors.New("[Bogus] text"), nil, "[Bogus] text"},
		{"a bracket alone", errors.New("[NotFound]"), nil, "[NotFound]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DecodeError(EncodeError(c.err).Error())
			if got.Error() != c.text {
				t.Errorf("text %q, want %q", got.Error(), c.text)
			}
			for _, k := range wireKinds {
				if is := errors.Is(got, k.kind); is != (k.kind == c.kind) {
					t.Errorf("errors.Is(%v, %v) = %t", got, k.kind, is)
				}
			}
		})
	}
	if EncodeError(nil) != nil {
		t.Error("EncodeError(nil) is not nil")
	}
}

type kindService struct{}

func (kindService) Fail(kind string, _ *Empty) error {
	for _, k := range wireKinds {
		if k.name == kind {
			return EncodeError(errkind.Errorf(k.kind, "refused as %s", kind))
		}
	}
	return errors.New("plain failure")
}

// Through net/rpc, as huskd and the shim talk: the client hands back the
// kind the shim's method returned, with the shim's message.
func TestClientDecodesKinds(t *testing.T) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Test", kindService{}); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	go srv.ServeCodec(jsonrpc.NewServerCodec(a))
	c := &Client{c: jsonrpc.NewClient(b)}
	defer c.Close()
	for _, k := range wireKinds {
		_, err := call[Empty](context.Background(), c, "Test.Fail", k.name)
		if !errors.Is(err, k.kind) || err.Error() != "shim Test.Fail: refused as "+k.name {
			t.Errorf("%s: got %v", k.name, err)
		}
	}
	_, err := call[Empty](context.Background(), c, "Test.Fail", "none")
	for _, k := range wireKinds {
		if errors.Is(err, k.kind) {
			t.Errorf("a plain error came back as %v", k.kind)
		}
	}
	if err == nil || err.Error() != "shim Test.Fail: plain failure" {
		t.Errorf("plain: got %v", err)
	}
}

// A call given up (its context done) leaves its reply to net/rpc: the
// answer that comes later must not be written into what the caller got.
// Under -race this fails when the reply is shared.
func TestCallGivenUpKeepsItsReply(t *testing.T) {
	srv := rpc.NewServer()
	release := make(chan struct{})
	if err := srv.RegisterName("Shim", &slowWait{release: release}); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	go srv.ServeCodec(jsonrpc.NewServerCodec(a))
	c := &Client{c: jsonrpc.NewClient(b)}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	snap, err := c.Wait(ctx, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a done context: %v", err)
	}
	close(release)
	// The late answer arrives while the caller reads what it got.
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if snap.Seq != 0 {
		t.Errorf("the caller's snapshot changed after its call was given up: seq %d", snap.Seq)
	}
}

type slowWait struct{ release chan struct{} }

func (s *slowWait) Wait(_ WaitArgs, r *Snapshot) error {
	<-s.release
	r.Seq = 42
	return nil
}

func (s *slowWait) Info(_ Empty, r *InfoReply) error { return nil }
