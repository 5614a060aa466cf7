package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
)

// TestSnapshotsRaceLifecycle races shim snapshots (the monitor's, and
// stale ones as a pod's file gives them) against UpdateResources and Stop
// on one container, many times: a container Stop has answered for stays
// exited, the resources UpdateResources recorded stay, and the event
// handler hears of the stop exactly once.
//
// The shim is a fake behind a real socket and shimapi.Client: the sandbox
// manager recovers a Ready pod from its record and reconnects to it, so its
// monitor runs as in huskd. Nothing here needs a kernel feature.
func TestSnapshotsRaceLifecycle(t *testing.T) {
	iterations := 200
	if testing.Short() {
		iterations = 30
	}
	// Short: the socket's path must fit in sun_path.
	dir, err := os.MkdirTemp("", "hs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, state := filepath.Join(dir, "r"), filepath.Join(dir, "s")
	pause := filepath.Join(dir, "pause")
	if err := os.WriteFile(pause, []byte("not run"), 0o755); err != nil {
		t.Fatal(err)
	}
	sbs, err := sandbox.New(sandbox.Config{Root: root, State: state, PausePath: pause,
		CreateTimeout: time.Minute, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Root: root, Node: NodeInfo{CgroupV2: true}, CreateTimeout: time.Minute}, sbs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evMu sync.Mutex
	events := map[string][]EventType{}
	m.SetEventFunc(func(et EventType, c *Container) {
		evMu.Lock()
		events[c.ID] = append(events[c.ID], et)
		evMu.Unlock()
	})
	podID := ids.New()
	writePodRecord(t, root, podID)
	if err := os.MkdirAll(filepath.Join(state, "pods", podID), 0o700); err != nil {
		t.Fatal(err)
	}
	shim := serveFakeShim(t, filepath.Join(state, "pods", podID, shimapi.SocketName))
	ctx := context.Background()
	if err := sbs.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if sb, err := sbs.Get(podID); err != nil || sb.State != sandbox.StateReady {
		t.Fatalf("pod not recovered Ready: %+v, %v", sb, err)
	}
	t.Cleanup(func() {
		// The monitor ends on the lost connection, recording the pod
		// NotReady; wait for that before the directories go.
		shim.close()
		shim.waitNotReady(t, sbs, podID)
	})

	before := &runtime.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 32 << 20}
	after := &runtime.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 128 << 20}
	for i := range iterations {
		id := ids.New()
		t0 := time.Now()
		created := shimapi.ContainerState{ID: id, Status: shimapi.StatusCreated, CreatedAt: t0}
		running := created
		running.Status, running.PID, running.StartedAt = shimapi.StatusRunning, 1000+i, t0
		staleCreated := shimapi.Snapshot{Seq: shim.set(created), Pause: shimapi.ProcessState{Running: true},
			Containers: []shimapi.ContainerState{created}}
		staleRunning := shimapi.Snapshot{Seq: shim.set(running), Pause: shimapi.ProcessState{Running: true},
			Containers: []shimapi.ContainerState{running}}
		if err := os.MkdirAll(m.dir(id), 0o700); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		m.ctrs[id] = m.newEntry(&Container{ID: id, PodID: podID, Config: &runtime.ContainerConfig{}, CreatedAt: t0,
			StopSignal: "SIGTERM", Resources: before, State: running})
		m.mu.Unlock()

		done := make(chan struct{})
		var wg sync.WaitGroup
		// Changes in the shim, each as soon as the monitor has handed the
		// last one over.
		wg.Go(func() {
			for !closed(done) {
				if err := shim.waitAsked(shim.touch()); err != nil {
					t.Error(err)
					return
				}
			}
		})
		// Snapshots older than what is known, as a pod's file can hold.
		for _, snap := range []shimapi.Snapshot{staleCreated, staleRunning} {
			wg.Go(func() {
				for !closed(done) {
					m.Snapshot(podID, snap, false)
				}
			})
		}

		if err := m.UpdateResources(ctx, id, after); err != nil {
			t.Fatalf("iteration %d: UpdateResources: %v", i, err)
		}
		if err := m.Stop(ctx, id, 0); err != nil {
			t.Fatalf("iteration %d: Stop: %v", i, err)
		}
		if c, _ := m.Get(id); c.State.Status != shimapi.StatusExited {
			t.Errorf("iteration %d: %s right after Stop answered", i, c.State.Status)
		}
		close(done)
		wg.Wait()
		// Once the monitor asks for what follows the shim's last change, it
		// has applied everything the shim said.
		if err := shim.waitAsked(shim.seqNow()); err != nil {
			t.Fatal(err)
		}

		c, _ := m.Get(id)
		if c.State.Status != shimapi.StatusExited || c.State.ExitCode != 137 {
			t.Errorf("iteration %d: state %s (exit code %d) after Stop, want exited (137)", i, c.State.Status, c.State.ExitCode)
		}
		if !proto.Equal(c.Resources, after) {
			t.Errorf("iteration %d: resources %v after UpdateResources(%v)", i, c.Resources, after)
		}
		// It was running when it was put in; stale snapshots never move it
		// back, so nothing but its stop is a step.
		evMu.Lock()
		if got := events[id]; len(got) != 1 || got[0] != EventStopped {
			t.Errorf("iteration %d: events %v, want one stop (%d)", i, got, EventStopped)
		}
		evMu.Unlock()
		m.mu.Lock()
		delete(m.ctrs, id)
		m.mu.Unlock()
		shim.remove(id)
		if t.Failed() {
			return
		}
	}
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// writePodRecord leaves the record of a Ready pod, as huskd writes it,
// for the sandbox manager's recovery to find.
func writePodRecord(t *testing.T, root, id string) {
	t.Helper()
	cfg, err := proto.Marshal(&runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"version": 1, "id": id, "name": "p_ns_u_0", "state": "ready",
		"createdAt": time.Now(), "config": cfg, "pidMode": int32(runtime.NamespaceMode_POD)})
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(root, "pods", id)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "sandbox.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeShim answers the calls of a shim from an in-memory state: what the
// sandbox manager's monitor (Info, Wait) and the container manager's Stop
// and UpdateResources ask.
type fakeShim struct {
	l net.Listener

	mu      sync.Mutex
	seq     uint64
	ctrs    map[string]shimapi.ContainerState
	changed chan struct{} // closed and replaced on every change of seq
	asked   uint64        // the highest After a Wait was called with
	askedCh chan struct{} // closed and replaced when asked grows
	conns   []net.Conn
	done    chan struct{}
}

func serveFakeShim(t *testing.T, socket string) *fakeShim {
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeShim{l: l, ctrs: map[string]shimapi.ContainerState{}, changed: make(chan struct{}),
		askedCh: make(chan struct{}), done: make(chan struct{})}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Shim", &fakeShimService{s}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			go srv.ServeCodec(jsonrpc.NewServerCodec(conn))
		}
	}()
	return s
}

func (s *fakeShim) close() {
	close(s.done)
	s.l.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *fakeShim) changedLocked() uint64 {
	s.seq++
	close(s.changed)
	s.changed = make(chan struct{})
	return s.seq
}

func (s *fakeShim) snapshotLocked() shimapi.Snapshot {
	snap := shimapi.Snapshot{Seq: s.seq, Pause: shimapi.ProcessState{PID: 1, Running: true}}
	for _, st := range s.ctrs {
		snap.Containers = append(snap.Containers, st)
	}
	return snap
}

// set records a container's state and returns the snapshot's new Seq.
func (s *fakeShim) set(st shimapi.ContainerState) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctrs[st.ID] = st
	return s.changedLocked()
}

func (s *fakeShim) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ctrs, id)
	s.changedLocked()
}

// touch is a change elsewhere in the pod: a new snapshot, the same
// states. It returns the snapshot's Seq.
func (s *fakeShim) touch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedLocked()
}

func (s *fakeShim) seqNow() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// waitAsked waits until a Wait asks for what follows seq: the monitor
// has then applied every snapshot up to seq.
func (s *fakeShim) waitAsked(seq uint64) error {
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		asked, ch := s.asked, s.askedCh
		s.mu.Unlock()
		if asked >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return fmt.Errorf("the monitor did not ask past seq %d in 10s (asked %d)", seq, asked)
		}
	}
}

func (s *fakeShim) waitNotReady(t *testing.T, sbs *sandbox.Manager, podID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sb, err := sbs.Get(podID)
		if err != nil || sb.State != sandbox.StateReady {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod still Ready 10s after its shim went")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type fakeShimService struct{ s *fakeShim }

func (v *fakeShimService) Info(_ shimapi.Empty, r *shimapi.InfoReply) error {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	*r = shimapi.InfoReply{ShimPID: os.Getpid(), Version: "fake", Snapshot: v.s.snapshotLocked()}
	return nil
}

func (v *fakeShimService) Wait(a shimapi.WaitArgs, r *shimapi.Snapshot) error {
	s := v.s
	s.mu.Lock()
	if a.After > s.asked {
		s.asked = a.After
		close(s.askedCh)
		s.askedCh = make(chan struct{})
	}
	for s.seq <= a.After {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.done:
			return errors.New("shim stopping")
		}
		s.mu.Lock()
	}
	*r = s.snapshotLocked()
	s.mu.Unlock()
	return nil
}

func (v *fakeShimService) StopContainer(a shimapi.StopContainerArgs, r *shimapi.ContainerState) error {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.ctrs[a.ID]
	if !ok {
		return fmt.Errorf("container %s not found", a.ID)
	}
	if st.Status != shimapi.StatusExited {
		st.Status, st.ExitCode, st.Reason, st.FinishedAt = shimapi.StatusExited, 137, "Error", time.Now()
		s.ctrs[a.ID] = st
		s.changedLocked()
	}
	*r = st
	return nil
}

func (v *fakeShimService) UpdateContainer(a shimapi.UpdateArgs, _ *shimapi.Empty) error {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.ctrs[a.ID]; !ok || st.Status == shimapi.StatusExited {
		return fmt.Errorf("container %s has exited", a.ID)
	}
	return nil
}
