package shimapi

import (
	"context"
	"errors"
	"strings"

	"github.com/huskrt/husk/internal/errdefs/errkind"
)

// net/rpc carries only an error's text, so the shim's errors would all
// reach kubelet as Unknown. The shim's methods return EncodeError(err): the
// text prefixed with the error's kind, "[NotFound] container x not found",
// and the client decodes it back into that kind (as containerd's shims
// carry errdefs kinds in gRPC codes). A huskd that does not know the
// prefix still reads a sentence; a shim that sends none gives Unknown, as
// before.

// wireKinds are the kinds that cross the boundary, by their name on the
// wire (the gRPC code's, so that a reader of a log knows it).
var wireKinds = []struct {
	name string
	kind error
}{
	{"InvalidArgument", errkind.InvalidArgument},
	{"NotFound", errkind.NotFound},
	{"AlreadyExists", errkind.AlreadyExists},
	{"FailedPrecondition", errkind.FailedPrecondition},
	{"Unavailable", errkind.Unavailable},
	{"Unimplemented", errkind.Unimplemented},
	{"Unauthenticated", errkind.Unauthenticated},
	{"PermissionDenied", errkind.PermissionDenied},
	{"DeadlineExceeded", errkind.Deadline},
	{"ResourceExhausted", errkind.ResourceExhausted},
}

// EncodeError is err as the shim returns it over net/rpc: its text,
// prefixed with its kind if it has one. nil stays nil.
func EncodeError(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range wireKinds {
		if errors.Is(err, k.kind) || (k.kind == errkind.Deadline && errors.Is(err, context.DeadlineExceeded)) ||
			(k.kind == errkind.ResourceExhausted && errkind.NoSpace(err)) {
			return errors.New("[" + k.name + "] " + err.Error())
		}
	}
	return err
}

// DecodeError turns the text of an error the shim returned back into an
// error of its kind with the text alone; a text without a known kind is an
// error of no kind.
func DecodeError(text string) error {
	if rest, ok := strings.CutPrefix(text, "["); ok {
		if name, msg, ok := strings.Cut(rest, "] "); ok {
			for _, k := range wireKinds {
				if k.name == name {
					return errkind.Errorf(k.kind, "%s", msg)
				}
			}
		}
	}
	return errors.New(text)
}
