package container

import (
	"fmt"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/shim/shimapi"
)

// TestReport is the rule by which what the shim says moves a container:
// never back in its life, never to an older snapshot, and never touching
// the resources UpdateResources recorded.
func TestReport(t *testing.T) {
	const id = "c1"
	t0 := time.Unix(1000, 0)
	created := shimapi.ContainerState{ID: id, Status: shimapi.StatusCreated, CreatedAt: t0}
	running := shimapi.ContainerState{ID: id, Status: shimapi.StatusRunning, PID: 42, CreatedAt: t0, StartedAt: t0.Add(time.Second)}
	exited := shimapi.ContainerState{ID: id, Status: shimapi.StatusExited, PID: 42, CreatedAt: t0, StartedAt: t0.Add(time.Second),
		FinishedAt: t0.Add(2 * time.Second), ExitCode: 137, Reason: "Error"}
	oom := exited
	oom.Reason = "OOMKilled"

	for _, tc := range []struct {
		name    string
		cur     shimapi.ContainerState
		curSeq  uint64
		next    shimapi.ContainerState
		seq     uint64
		want    shimapi.ContainerState
		wantSeq uint64
	}{
		{"snapshot moves created to running", created, 3, running, 4, running, 4},
		{"snapshot moves running to exited", running, 4, exited, 5, exited, 5},
		{"reply moves running to exited", running, 4, exited, 0, exited, 4},
		{"reply to start after the container exited", exited, 5, running, 0, exited, 5},
		{"snapshot of running after Stop's reply", exited, 4, running, 7, exited, 4},
		{"snapshot of created after the start", running, 4, created, 5, running, 4},
		{"older snapshot, same status", exited, 9, oom, 8, exited, 9},
		{"older snapshot of the same life", created, 9, running, 8, created, 9},
		{"newer snapshot refines an exit", exited, 5, oom, 6, oom, 6},
		{"same snapshot again", running, 4, running, 4, running, 4},
		{"reply of a failed call (zero state)", running, 4, shimapi.ContainerState{}, 0, running, 4},
		{"another container's state", running, 4, shimapi.ContainerState{ID: "c2", Status: shimapi.StatusExited}, 5, running, 4},
		{"first snapshot after a restart", shimapi.ContainerState{}, 0, running, 12, running, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}
			c := &Container{ID: id, Resources: res, State: tc.cur, seq: tc.curSeq}
			report(c, tc.next, tc.seq)
			if c.State != tc.want || c.seq != tc.wantSeq {
				t.Errorf("got %+v at seq %d, want %+v at seq %d", c.State, c.seq, tc.want, tc.wantSeq)
			}
			if c.Resources != res {
				t.Errorf("resources changed to %v", c.Resources)
			}
		})
	}
}

func TestUnknownExit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	exited := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusExited, ExitCode: 0, Reason: "Completed", FinishedAt: t0}
	c := &Container{ID: "c1", State: exited}
	unknownExit(c, "the pod's shim is gone")
	if c.State != exited {
		t.Errorf("a known exit was overwritten: %+v", c.State)
	}
	c = &Container{ID: "c1", State: shimapi.ContainerState{ID: "c1", Status: shimapi.StatusRunning}}
	if !unknownExit(c, "the pod's shim is gone") {
		t.Error("a new unseen exit was not declared for the record")
	}
	if st := c.State; st.Status != shimapi.StatusExited || st.ExitCode != 255 || st.Reason != "Unknown" || st.FinishedAt.IsZero() {
		t.Errorf("running container not recorded exited: %+v", st)
	}
	// After a restart: the record's exit, to the nanosecond, not a new one.
	declared := *c.UnseenExit
	c = &Container{ID: "c1", UnseenExit: &declared, State: shimapi.ContainerState{ID: "c1", Status: shimapi.StatusRunning}}
	if unknownExit(c, "no shim reported it") {
		t.Error("the recorded exit was declared again")
	}
	want := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusExited, ExitCode: 255, Reason: "Unknown", Message: "the pod's shim is gone", FinishedAt: declared.FinishedAt}
	if c.State != want {
		t.Errorf("after a restart: %+v, want the recorded exit %+v", c.State, want)
	}
}

// TestWithContainer: Stop and Remove are idempotent (api.proto): an
// unknown or removed container is success and nothing runs; an ambiguous
// prefix is an error; a known one runs with its lifecycle lock held.
func TestWithContainer(t *testing.T) {
	m := &Manager{ctrs: map[string]*entry{}}
	live := m.newEntry(&Container{ID: "abc1"})
	gone := m.newEntry(&Container{ID: "abd2"})
	gone.removed = true
	m.ctrs["abc1"], m.ctrs["abd2"] = live, gone

	for _, tc := range []struct {
		id      string
		wantRun *entry
		wantErr bool
	}{
		{"abc1", live, false},
		{"abc", live, false},
		{"abd2", nil, false},
		{"zzz", nil, false},
		{"ab", nil, true},
	} {
		var ran *entry
		err := m.withContainer(tc.id, func(e *entry) error {
			if e.mu.TryLock() {
				t.Errorf("%s: fn runs without the lifecycle lock", tc.id)
				e.mu.Unlock()
			}
			ran = e
			return nil
		})
		if (err != nil) != tc.wantErr || ran != tc.wantRun {
			t.Errorf("withContainer(%q): ran %v, err %v; want ran %v, error %v", tc.id, ran, err, tc.wantRun, tc.wantErr)
		}
	}
}

// TestStatusEvents: which changes of the published state are events.
func TestStatusEvents(t *testing.T) {
	created := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusCreated}
	running := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusRunning, StartedAt: time.Unix(1, 0)}
	exited := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusExited, StartedAt: time.Unix(1, 0), FinishedAt: time.Unix(2, 0)}
	failed := shimapi.ContainerState{ID: "c1", Status: shimapi.StatusExited, FinishedAt: time.Unix(2, 0)}
	for _, tc := range []struct {
		name     string
		from     shimapi.ContainerState
		to       []shimapi.ContainerState
		deleteAt int // delete before this step of to; -1: never
		want     []EventType
	}{
		{"start then exit", created, []shimapi.ContainerState{running, exited}, -1, []EventType{EventStarted, EventStopped}},
		{"same state again", running, []shimapi.ContainerState{running, running}, -1, nil},
		{"exit seen before Start's reply", created, []shimapi.ContainerState{exited, running}, -1, []EventType{EventStarted, EventStopped}},
		{"start failed", created, []shimapi.ContainerState{failed}, -1, []EventType{EventStopped}},
		{"snapshot applied after removal", running, []shimapi.ContainerState{exited}, 0, []EventType{EventDeleted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []EventType
			m := &Manager{}
			m.SetEventFunc(func(et EventType, c *Container) { got = append(got, et) })
			e := m.newEntry(&Container{ID: "c1", State: tc.from})
			for i, st := range tc.to {
				if i == tc.deleteAt {
					m.event(e, EventDeleted)
				}
				e.update(func(x *Container) { report(x, st, 0) })
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}
