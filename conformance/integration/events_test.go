package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// eventStats is what a verbose Status says of GetContainerEvents.
type eventStats struct {
	Subscribers        int    `json:"subscribers"`
	Published          uint64 `json:"published"`
	DroppedSubscribers uint64 `json:"droppedSubscribers"`
	DroppedEvents      uint64 `json:"droppedEvents"`
}

func containerEventStats(t *testing.T, h *huskdtest.Huskd) eventStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.Raw.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	var st eventStats
	if err := json.Unmarshal([]byte(resp.GetInfo()["containerEvents"]), &st); err != nil {
		t.Fatalf("Status info containerEvents %q: %v", resp.GetInfo()["containerEvents"], err)
	}
	return st
}

// waitSubscribers waits until huskd has n event subscribers: a client's
// stream is open before huskd's handler has subscribed.
func waitSubscribers(t *testing.T, h *huskdtest.Huskd, n int) {
	t.Helper()
	huskdtest.Eventually(t, 10*time.Second, fmt.Sprintf("huskd has %d event subscribers", n), func() bool {
		return containerEventStats(t, h).Subscribers == n
	})
}

// subscriber collects one GetContainerEvents stream.
type subscriber struct {
	mu     sync.Mutex
	events []*runtime.ContainerEventResponse
	err    error
	done   chan struct{}
}

func (s *subscriber) add(ev *runtime.ContainerEventResponse) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

func (s *subscriber) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
}

// of returns the events of one container so far.
func (s *subscriber) of(id string) []*runtime.ContainerEventResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runtime.ContainerEventResponse
	for _, ev := range s.events {
		if ev.GetContainerId() == id {
			out = append(out, ev)
		}
	}
	return out
}

func (s *subscriber) all() []*runtime.ContainerEventResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*runtime.ContainerEventResponse(nil), s.events...)
}

// subscribeCRIClient subscribes through k8s.io/cri-client, as kubelet
// does, on a connection of its own (not h's, which Kill closes).
func subscribeCRIClient(t *testing.T, h *huskdtest.Huskd) *subscriber {
	t.Helper()
	//lint:ignore SA1019 the builder only renames it; its defaults are the ones wanted
	rs, err := remote.NewRemoteRuntimeService(context.Background(), "unix://"+h.Sock, time.Minute, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{done: make(chan struct{})}
	ch := make(chan *runtime.ContainerEventResponse, 100)
	go func() {
		for ev := range ch {
			s.add(ev)
		}
	}()
	go func() {
		err := rs.GetContainerEvents(ctx, ch, nil)
		close(ch)
		s.end(err)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
		_ = rs.Close(context.Background())
	})
	return s
}

// subscribeRaw subscribes through a plain gRPC client on its own
// connection; with read false it never reads (and its windows are fixed
// at 64 KiB, so that gRPC does not grow them to take in what the client
// leaves unread).
func subscribeRaw(t *testing.T, h *huskdtest.Huskd, read bool) (*subscriber, runtime.RuntimeService_GetContainerEventsClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+h.Sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = conn.Close() })
	stream, err := runtime.NewRuntimeServiceClient(conn).GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents: %v", err)
	}
	s := &subscriber{done: make(chan struct{})}
	if read {
		go func() {
			for {
				ev, err := stream.Recv()
				if err != nil {
					s.end(err)
					return
				}
				s.add(ev)
			}
		}()
	}
	return s, stream
}

func eventTypes(evs []*runtime.ContainerEventResponse) []runtime.ContainerEventType {
	var out []runtime.ContainerEventType
	for _, ev := range evs {
		out = append(out, ev.GetContainerEventType())
	}
	return out
}

var lifeEvents = []runtime.ContainerEventType{
	runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
	runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
	runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
	runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
}

func sameTypes(a, b []runtime.ContainerEventType) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// checkLife checks the four events of a container that exited on its own
// with exitCode, in pod: each with the pod's status and the statuses of
// the pod's containers at that step.
func checkLife(t *testing.T, who string, evs []*runtime.ContainerEventResponse, pod, id string, exitCode int32) {
	t.Helper()
	if !sameTypes(eventTypes(evs), lifeEvents) {
		t.Fatalf("%s: events of %.12s %v, want %v", who, id, eventTypes(evs), lifeEvents)
	}
	var last int64
	for i, ev := range evs {
		ps := ev.GetPodSandboxStatus()
		if ps.GetId() != pod || ps.GetState() != runtime.PodSandboxState_SANDBOX_READY || ps.GetMetadata().GetUid() == "" {
			t.Errorf("%s: %s: pod status %v, want pod %.12s ready with its metadata", who, ev.GetContainerEventType(), ps, pod)
		}
		if ev.GetCreatedAt() < last || ev.GetCreatedAt() == 0 {
			t.Errorf("%s: %s at %d, before the event before it (%d)", who, ev.GetContainerEventType(), ev.GetCreatedAt(), last)
		}
		last = ev.GetCreatedAt()
		var mine *runtime.ContainerStatus
		for _, cs := range ev.GetContainersStatuses() {
			if cs.GetId() == id {
				mine = cs
			}
		}
		want := []runtime.ContainerState{runtime.ContainerState_CONTAINER_CREATED, runtime.ContainerState_CONTAINER_RUNNING, runtime.ContainerState_CONTAINER_EXITED}
		switch {
		case i == 3:
			if mine != nil {
				t.Errorf("%s: DELETED still lists the container: %v", who, mine)
			}
		case mine == nil:
			t.Errorf("%s: %s does not list the container: %v", who, ev.GetContainerEventType(), ev.GetContainersStatuses())
		case i == 1 && mine.GetState() == runtime.ContainerState_CONTAINER_EXITED:
			// It exited before Start's reply: the shim said so first.
		case mine.GetState() != want[i]:
			t.Errorf("%s: %s shows the container %s, want %s", who, ev.GetContainerEventType(), mine.GetState(), want[i])
		case i == 2 && (mine.GetExitCode() != exitCode || mine.GetFinishedAt() == 0 || mine.GetMetadata().GetName() == ""):
			t.Errorf("%s: STOPPED shows %v, want exit code %d, a finish time and its metadata", who, mine, exitCode)
		}
	}
}

// TestContainerEvents: two subscribers, one through cri-client as kubelet
// subscribes, one a plain gRPC client, both see a container that exits on
// its own go through created, started, stopped and deleted, with statuses;
// another container of the pod is in each event's statuses. huskd killed,
// the streams end; the new huskd invents nothing of what happened while it
// was down.
func TestContainerEvents(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "events", nil)
	sleeper := runCtr(t, h, pod, podCfg, ctrConfig("sleeper", "sleep", "1000"))

	kubeletLike := subscribeCRIClient(t, h)
	raw, _ := subscribeRaw(t, h, true)
	waitSubscribers(t, h, 2)

	id := runCtr(t, h, pod, podCfg, ctrConfig("quitter", "sh", "-c", "exit 3"))
	waitExited(t, h, id, 30*time.Second)
	// PodSandboxStatus has the same statuses, newest first, as kubelet
	// with EventedPLEG reads them there instead of listing containers.
	ps, err := h.Runtime.PodSandboxStatus(context.Background(), pod, false)
	if err != nil {
		t.Fatal(err)
	}
	if cs := ps.GetContainersStatuses(); len(cs) != 2 || cs[0].GetId() != id || cs[0].GetExitCode() != 3 ||
		cs[1].GetId() != sleeper || cs[1].GetState() != runtime.ContainerState_CONTAINER_RUNNING || ps.GetTimestamp() == 0 {
		t.Errorf("PodSandboxStatus: containers %v at %d, want the exited %.12s then the running %.12s, and a timestamp", cs, ps.GetTimestamp(), id, sleeper)
	}
	if err := h.Runtime.RemoveContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for who, s := range map[string]*subscriber{"cri-client": kubeletLike, "raw": raw} {
		huskdtest.Eventually(t, 10*time.Second, who+" has 4 events of the container", func() bool { return len(s.of(id)) >= 4 })
		evs := s.of(id)
		checkLife(t, who, evs, pod, id, 3)
		// The other container is in every event's statuses, running.
		for _, ev := range evs {
			found := false
			for _, cs := range ev.GetContainersStatuses() {
				found = found || cs.GetId() == sleeper && cs.GetState() == runtime.ContainerState_CONTAINER_RUNNING
			}
			if !found {
				t.Errorf("%s: %s does not show the other container running: %v", who, ev.GetContainerEventType(), ev.GetContainersStatuses())
			}
		}
		if n := len(s.all()); n != 4 {
			t.Errorf("%s: %d events in all, want the container's 4 (the sleeper's were before it subscribed): %v", who, n, eventTypes(s.all()))
		}
	}

	// huskd dies: both streams end with an error; the sleeper is killed
	// while it is down.
	pid := ctrPid(t, h, sleeper)
	h.Kill()
	for who, s := range map[string]*subscriber{"cri-client": kubeletLike, "raw": raw} {
		select {
		case <-s.done:
			if s.err == nil {
				t.Errorf("%s: the stream ended without an error when huskd died", who)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the stream did not end when huskd died", who)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.Launch()
	after, _ := subscribeRaw(t, h, true)
	waitSubscribers(t, h, 1)
	// The sleeper's exit is in its status (the shim saw it), not in an
	// event: the subscriber lists to learn what happened before.
	if st := ctrStatus(t, h, sleeper); st.GetState() != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("sleeper %s after huskd's restart, want exited", st.GetState())
	}
	id2 := runCtr(t, h, pod, podCfg, ctrConfig("quitter2", "sh", "-c", "exit 4"))
	waitExited(t, h, id2, 30*time.Second)
	if err := h.Runtime.RemoveContainer(context.Background(), id2); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 10*time.Second, "the new subscriber has 4 events of the new container", func() bool { return len(after.of(id2)) >= 4 })
	checkLife(t, "after restart", after.of(id2), pod, id2, 4)
	if all := after.all(); len(all) != 4 {
		t.Errorf("after restart: %d events, want the new container's 4 only: %v", len(all), eventTypes(all))
	}
}

// TestContainerEventsSlowSubscriber: a subscriber that never reads is
// dropped once it is event_buffer events behind, with ResourceExhausted;
// huskd answers every call meanwhile, and a subscriber that reads gets
// every event.
func TestContainerEventsSlowSubscriber(t *testing.T) {
	const buffer = 4
	h, _ := ctrHuskd(t, fmt.Sprintf("[runtime]\nevent_buffer = %d\n", buffer))
	pod, podCfg := podWithLogs(t, h, "events-slow", nil)
	_, slowStream := subscribeRaw(t, h, false)
	reader := subscribeCRIClient(t, h)
	waitSubscribers(t, h, 2)

	var ids []string
	start := time.Now()
	for containerEventStats(t, h).DroppedSubscribers == 0 {
		if len(ids) == 300 {
			t.Fatalf("the slow subscriber is not dropped after %d containers: %+v", len(ids), containerEventStats(t, h))
		}
		// Each call within a deadline: nothing waits for the slow one.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cfg := ctrConfig(fmt.Sprintf("c%d", len(ids)))
		id, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
		if err == nil {
			err = h.Runtime.RemoveContainer(ctx, id)
		}
		cancel()
		if err != nil {
			t.Fatalf("container %d: %v", len(ids), err)
		}
		ids = append(ids, id)
	}
	st := containerEventStats(t, h)
	t.Logf("the slow subscriber was dropped after %d containers (%d events) in %s: %+v", len(ids), 2*len(ids), time.Since(start).Round(time.Millisecond), st)
	if st.DroppedSubscribers != 1 || st.DroppedEvents < buffer+1 || st.Subscribers != 1 {
		t.Errorf("stats %+v, want 1 subscriber dropped with at least %d events, 1 left", st, buffer+1)
	}

	// The slow stream, read at last: what gRPC had in flight, then the
	// error that says why.
	var err error
	for n := 0; err == nil; n++ {
		_, err = slowStream.Recv()
		if n > 10000 {
			t.Fatal("the slow stream does not end")
		}
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too slow") {
		t.Errorf("the slow stream ended with %v, want ResourceExhausted saying it was too slow", err)
	}
	if !strings.Contains(h.Log(), "Dropped a container events subscriber too slow to keep up") {
		t.Error("huskd's log does not say it dropped a subscriber")
	}

	// The reader got every container's created and deleted, in order;
	// between them a stop if the shim's snapshot said the container's
	// waiting init was killed before it was removed.
	for _, id := range ids {
		huskdtest.Eventually(t, 10*time.Second, "the reader has the deletion of "+id[:12], func() bool {
			evs := reader.of(id)
			return len(evs) > 0 && evs[len(evs)-1].GetContainerEventType() == lifeEvents[3]
		})
		got := eventTypes(reader.of(id))
		if !sameTypes(got, []runtime.ContainerEventType{lifeEvents[0], lifeEvents[3]}) &&
			!sameTypes(got, []runtime.ContainerEventType{lifeEvents[0], lifeEvents[2], lifeEvents[3]}) {
			t.Errorf("reader: events of %.12s %v, want created, (stopped,) deleted", id, got)
		}
	}
	select {
	case <-reader.done:
		t.Errorf("the reading subscriber's stream ended: %v", reader.err)
	default:
	}
}

// TestCrictlEvents: `crictl events -o json` prints a container's four
// events as huskd sends them.
func TestCrictlEvents(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	cmd := crictlCmd(t, h, "events", "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &subscriber{done: make(chan struct{})}
	go func() {
		// One indented JSON object per event (protojson's field names).
		dec := json.NewDecoder(out)
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				s.end(err)
				return
			}
			ev := &runtime.ContainerEventResponse{}
			if err := protojson.Unmarshal(raw, ev); err != nil {
				s.end(fmt.Errorf("crictl printed %s: %w", raw, err))
				return
			}
			s.add(ev)
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // crictl's PID: it streams until killed
		<-s.done
		_ = cmd.Wait()
	})
	waitSubscribers(t, h, 1)

	pod, podCfg := podWithLogs(t, h, "events-crictl", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("quitter", "sh", "-c", "exit 5"))
	waitExited(t, h, id, 30*time.Second)
	if err := h.Runtime.RemoveContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 10*time.Second, "crictl printed the container's 4 events", func() bool {
		select {
		case <-s.done:
			t.Fatalf("crictl's output ended: %v\n%s", s.err, stderr.String())
		default:
		}
		return len(s.of(id)) >= 4
	})
	checkLife(t, "crictl", s.of(id), pod, id, 5)
}
