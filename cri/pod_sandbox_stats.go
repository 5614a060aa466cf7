package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// PodSandboxStats returns stats of the pod sandbox: CPU and memory of the
// pause and its containers, the network of its namespace, and each
// container's stats. If the pod sandbox does not exist, the call returns
// an error (NotFound).
func (s *Server) PodSandboxStats(_ context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats(sb, time.Now())}, nil
}

func (s *Server) listPodSandboxStats(f *runtime.PodSandboxStatsFilter) []*runtime.PodSandboxStats {
	sbs := s.listSandboxes(&runtime.PodSandboxFilter{Id: f.GetId(), LabelSelector: f.GetLabelSelector()})
	now := time.Now()
	out := make([]*runtime.PodSandboxStats, 0, len(sbs))
	for _, p := range sbs {
		sb, err := s.sandboxes.Get(p.Id)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, s.podStats(sb, now))
	}
	return out
}

// ListPodSandboxStats returns stats of the pod sandboxes the filter
// selects (ID or prefix, labels).
func (s *Server) ListPodSandboxStats(_ context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	return &runtime.ListPodSandboxStatsResponse{Stats: s.listPodSandboxStats(r.GetFilter())}, nil
}

// StreamPodSandboxStats returns the same items as ListPodSandboxStats, in
// batches of at least one item; each item appears once.
func (s *Server) StreamPodSandboxStats(r *runtime.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	return sendBatches(s.listPodSandboxStats(r.GetFilter()), stream.Send, func(b []*runtime.PodSandboxStats) *runtime.StreamPodSandboxStatsResponse {
		return &runtime.StreamPodSandboxStatsResponse{PodSandboxStats: b}
	})
}
