package container

import (
	"testing"
	"time"
)

func TestCappedBuffer(t *testing.T) {
	var b cappedBuffer
	chunk := make([]byte, 5<<20)
	for i := 0; i < 4; i++ {
		if n, err := b.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v; a capped buffer takes everything", n, err)
		}
	}
	if len(b.b) != MaxExecOutput || b.dropped != 20<<20-MaxExecOutput {
		t.Errorf("kept %d, dropped %d; want %d, %d", len(b.b), b.dropped, MaxExecOutput, 20<<20-MaxExecOutput)
	}
}

// A session without a terminal may get no resize channel at all: the
// forwarder must still end with the session (a nil channel never closes).
func TestForwardResizesEndsWithTheSession(t *testing.T) {
	for name, resize := range map[string]chan TerminalSize{"nil": nil, "open": make(chan TerminalSize)} {
		ended := make(chan struct{})
		done := make(chan struct{})
		go func() {
			forwardResizes(resize, ended, func(TerminalSize) {})
			close(done)
		}()
		close(ended)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s resize channel: the forwarder outlived its session", name)
		}
	}
}
