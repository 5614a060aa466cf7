package cri

import (
	"errors"
	"strings"
	"testing"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestValidStreams(t *testing.T) {
	for _, c := range []struct {
		tty, stdin, stdout, stderr bool
		want                       string // field named in the error; "" for valid
	}{
		{false, false, true, true, ""},
		{false, true, false, false, ""},
		{true, true, true, false, ""},
		{true, false, true, true, "stderr"},
		{false, false, false, false, "stdin"},
		{true, false, false, false, "stdin"},
	} {
		err := validStreams(c.tty, c.stdin, c.stdout, c.stderr)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case c.want != "" && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: got %v, want InvalidArgument naming %s", c, err, c.want)
		}
	}
}
