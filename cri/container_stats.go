package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// ContainerStats returns stats of the container. If the container does
// not exist, the call returns an error (NotFound).
func (s *Server) ContainerStats(_ context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(c, time.Now())}, nil
}

func (s *Server) listContainerStats(f *runtime.ContainerStatsFilter) []*runtime.ContainerStats {
	cs := s.filterContainers(&runtime.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()})
	out := make([]*runtime.ContainerStats, 0, len(cs))
	keep := map[string]bool{}
	for _, c := range cs {
		if st, ok := s.stats.get(c.ID); ok {
			out = append(out, st)
		}
		keep[c.ID] = true
	}
	if f == nil {
		for _, sb := range s.sandboxes.List() {
			keep["pod/"+sb.ID] = true
		}
		s.rates.forget(keep)
	}
	return out
}

// ListContainerStats returns stats of the containers the filter selects
// (ID or prefix, pod, labels), in any state.
func (s *Server) ListContainerStats(_ context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	return &runtime.ListContainerStatsResponse{Stats: s.listContainerStats(r.GetFilter())}, nil
}

// StreamContainerStats returns the same items as ListContainerStats, in
// batches of at least one item; each item appears once.
func (s *Server) StreamContainerStats(r *runtime.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	return sendBatches(s.listContainerStats(r.GetFilter()), stream.Send, func(b []*runtime.ContainerStats) *runtime.StreamContainerStatsResponse {
		return &runtime.StreamContainerStatsResponse{ContainerStats: b}
	})
}
