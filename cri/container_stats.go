package cri

import (
	"context"

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
	st, _ := s.containerStats(c)
	return &runtime.ContainerStatsResponse{Stats: st}, nil
}

// listContainerStats reads the stats of the containers f selects, each
// at the time it is read; concurrent calls with the same filter share one
// read (see shared). The result must not be changed.
func (s *Server) listContainerStats(f *runtime.ContainerStatsFilter) []*runtime.ContainerStats {
	return s.shared("ListContainerStats", f, func() any {
		cs := s.filterContainers(&runtime.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()})
		out := make([]*runtime.ContainerStats, len(cs))
		inParallel(len(cs), func(i int) { out[i], _ = s.containerStats(cs[i]) })
		if f == nil { // kubelet's periodic call
			s.forgetGone()
		}
		return out
	}).([]*runtime.ContainerStats)
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
