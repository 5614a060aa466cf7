package result

import (
	"bytes"
	"errors"
	"testing"
)

// TestWriteRead: what husk-runc writes is what the shim reads, in the
// format both have always used on descriptor 3.
func TestWriteRead(t *testing.T) {
	for _, tc := range []struct {
		pid  int
		err  error
		wire string
	}{
		{42, nil, `{"pid":42}` + "\n"},
		{0, errors.New("creating container: boom"), `{"error":"creating container: boom"}` + "\n"},
		{42, errors.New("boom"), `{"error":"boom"}` + "\n"},
	} {
		var b bytes.Buffer
		if err := Write(&b, tc.pid, tc.err); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.wire {
			t.Errorf("Write(%d, %v) = %q, want %q", tc.pid, tc.err, b.String(), tc.wire)
		}
		res, err := Read(b.Bytes())
		if err != nil {
			t.Fatalf("Read(%q): %v", b.String(), err)
		}
		want := Result{PID: tc.pid}
		if tc.err != nil {
			want = Result{Error: tc.err.Error()}
		}
		if res != want {
			t.Errorf("Read(%q) = %+v, want %+v", b.String(), res, want)
		}
	}
	if _, err := Read(nil); err == nil {
		t.Error("Read of nothing (husk-runc died before writing) is no error")
	}
}
