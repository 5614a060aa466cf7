package container

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/shim/shimapi"
)

// The record keeps a container's exit, which a reboot takes from the
// pod's state directory, and nothing of a state before it: the shim
// knows that one.
func TestRecordKeepsTheExit(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	at := time.Date(2026, 12, 3, 16, 0, 0, 123, time.UTC)
	exited := shimapi.ContainerState{ID: id, PID: 42, Status: shimapi.StatusExited, CreatedAt: at, StartedAt: at.Add(time.Second),
		FinishedAt: at.Add(2 * time.Second), ExitCode: 3, Reason: "Error", Message: "bye"}
	for _, tc := range []struct {
		name string
		st   shimapi.ContainerState
		want shimapi.ContainerState
	}{
		{"exited", exited, exited},
		{"running", shimapi.ContainerState{ID: id, PID: 42, Status: shimapi.StatusRunning, CreatedAt: at, StartedAt: at}, shimapi.ContainerState{}},
		{"created", shimapi.ContainerState{ID: id, Status: shimapi.StatusCreated, CreatedAt: at}, shimapi.ContainerState{}},
		{"no state", shimapi.ContainerState{}, shimapi.ContainerState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &Container{ID: id, PodID: id, Name: "n", Config: &runtime.ContainerConfig{}, CreatedAt: at, State: tc.st}
			if err := writeRecord(dir, c); err != nil {
				t.Fatal(err)
			}
			got, err := readRecord(dir)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got.State); d != "" {
				t.Errorf("state read back (-want +got):\n%s", d)
			}
		})
	}
}
