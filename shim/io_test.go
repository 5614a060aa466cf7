package shim

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/huskrt/husk/shim/shimapi"
)

// A session for a container that is not running is refused as such, so
// that huskd answers FailedPrecondition (the caller raced the exit) and
// not Unknown.
func TestIORefusesContainerNotRunning(t *testing.T) {
	s := &server{
		opts:     Options{Dir: t.TempDir(), PodID: "pod1"},
		ctrs:     map[string]*ctr{"c1": {state: shimapi.ContainerState{Status: shimapi.StatusExited}}},
		stopping: make(chan struct{}),
	}
	l, err := s.listenIO()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go s.serveIO(l)
	sock := l.Addr().String()

	_, err = shimapi.StartIO(context.Background(), sock, shimapi.IORequest{Op: shimapi.OpExec, ID: "c1", Args: []string{"true"}}, nil)
	var nr *shimapi.NotRunningError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "container c1 is exited, not running") {
		t.Errorf("exec in an exited container: %v (%T); want a NotRunningError naming it", err, err)
	}
	_, err = shimapi.StartIO(context.Background(), sock, shimapi.IORequest{Op: shimapi.OpExec, ID: "c2", Args: []string{"true"}}, nil)
	if err == nil || errors.As(err, &nr) {
		t.Errorf("exec in an unknown container: %v; want a plain error", err)
	}
	close(s.stopping)
	_, err = shimapi.StartIO(context.Background(), sock, shimapi.IORequest{Op: shimapi.OpAttach, ID: "c1"}, nil)
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "pod pod1 is stopping") {
		t.Errorf("attach while the pod stops: %v; want a NotRunningError", err)
	}
}
