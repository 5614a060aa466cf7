package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeShim waits for go on fd 4 as husk-shim does: without it, it
// notes that it was abandoned and exits; with it, it reports a pause.
const fakeShim = `#!/bin/sh
if [ -z "$(head -c1 <&4)" ]; then echo > abandoned; exit 0; fi
echo '{"shimPid":1,"pausePid":42}' >&3
`

func TestLaunchedShimWaitsForGo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "husk-shim")
	if err := os.WriteFile(bin, []byte(fakeShim), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{ShimPath: bin, RuncPath: "/bin/false"}}

	dir := t.TempDir()
	s, err := m.launchShim("abandoned-pod", dir)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // huskd's preparation of the pod
	s.abandon()
	select {
	case <-s.done:
	default:
		t.Fatal("abandon returned before the shim exited")
	}
	if _, err := os.Stat(filepath.Join(dir, "abandoned")); err != nil {
		t.Errorf("the shim did not see huskd give the pod up: %v", err)
	}
	s.abandon() // a second call (the undo after ready) does nothing

	s, err = m.launchShim("ready-pod", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, pausePID, err := s.ready(context.Background())
	if err != nil || pausePID != 42 {
		t.Fatalf("ready = pause %d, %v; want 42", pausePID, err)
	}
	<-s.done
	s.abandon() // after ready: nothing to do
}
