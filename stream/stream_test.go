package stream

import (
	"context"
	"testing"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// The converter of resize events ends when its session does, even while
// the client still sends sizes that nobody reads.
func TestSizesEndWithTheCall(t *testing.T) {
	in := make(chan remotecommand.TerminalSize)
	ctx, cancel := context.WithCancel(context.Background())
	out := sizes(ctx, in)
	sent := make(chan struct{})
	go func() {
		// The first is taken and waits in out; the second is held.
		in <- remotecommand.TerminalSize{Width: 1, Height: 1}
		in <- remotecommand.TerminalSize{Width: 2, Height: 2}
		close(sent)
	}()
	<-sent
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-out:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the resize converter outlived its call")
		}
	}
}
