package cri

import (
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/internal/broadcast"
	"github.com/huskrt/husk/internal/errdefs"
)

// DefaultEventBuffer is how many events a subscriber of GetContainerEvents
// may fall behind before it is dropped: kubelet's own channel for them
// holds 1000 (pkg/kubelet/pleg/evented.go).
const DefaultEventBuffer = 1000

var eventTypes = map[container.EventType]runtime.ContainerEventType{
	container.EventCreated: runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
	container.EventStarted: runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
	container.EventStopped: runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
	container.EventDeleted: runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams the steps of every container's life from the
// time of the call: created, started, stopped (by StopContainer, on its
// own, or with its shim) and deleted, each with its pod's status and the
// statuses of the pod's containers at that step (a deleted container is no
// longer among them). Nothing from before the call, nor from before a
// restart of huskd, is sent: a subscriber whose stream ended lists again.
//
// A subscriber that falls more than the buffer behind is dropped: its
// stream ends with ResourceExhausted, and huskd and the shims never wait
// for it. The stream ends with Unavailable when huskd stops.
func (s *Server) GetContainerEvents(_ *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	sub := s.events.Subscribe(s.eventBuffer())
	defer s.events.Unsubscribe(sub)
	ctx := stream.Context()
	klog.V(2).InfoS("Container events subscriber added", "subscribers", s.events.Stats().Subscribers)
	for {
		// Done first: a dropped subscriber hears why as soon as it reads
		// again, not after what gRPC holds for it.
		select {
		case <-sub.Done():
			return s.eventsEnded(sub)
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Done():
			return s.eventsEnded(sub)
		case ev := <-sub.C():
			// A client that stops reading blocks this Send once gRPC's flow
			// control window is full; the broadcaster drops it when its
			// buffer fills too, and this goroutine waits here until the
			// client reads or goes.
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// eventsEnded is why a subscription ended that the subscriber did not end.
func (s *Server) eventsEnded(sub *broadcast.Subscriber[*runtime.ContainerEventResponse]) error {
	dropped, sent := sub.Dropped()
	if !dropped {
		return errdefs.Unavailable("huskd is stopping")
	}
	st := s.events.Stats()
	klog.InfoS("Dropped a container events subscriber too slow to keep up", "buffer", s.eventBuffer(), "events", sent,
		"droppedSubscribers", st.DroppedSubscribers, "droppedEvents", st.DroppedEvents)
	return errdefs.ResourceExhausted("container events subscriber too slow: dropped after %d events, %d behind", sent, s.eventBuffer())
}

func (s *Server) eventBuffer() int {
	if s.opts.EventBuffer > 0 {
		return s.opts.EventBuffer
	}
	return DefaultEventBuffer
}

// containerEvent publishes a step of c's life (container.EventFunc): it
// runs with c's status lock held, and Publish never waits.
func (s *Server) containerEvent(t container.EventType, c *container.Container) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        c.ID,
		ContainerEventType: eventTypes[t],
		CreatedAt:          time.Now().UnixNano(),
	}
	if sb, err := s.sandboxes.Get(c.PodID); err == nil {
		ev.PodSandboxStatus = podSandboxStatus(sb)
	}
	// c as of this step: the list may have a newer state already, which
	// its own event brings.
	ev.ContainersStatuses = s.podContainerStatuses(c.PodID, c)
	s.events.Publish(ev)
}
