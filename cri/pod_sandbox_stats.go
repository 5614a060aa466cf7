package cri

import (
	"context"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
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
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats(sb, s.containersByPod()[sb.ID])}, nil
}

// containersByPod groups the containers by their pod's ID.
func (s *Server) containersByPod() map[string][]*container.Container {
	out := map[string][]*container.Container{}
	for _, c := range s.containers.List() {
		out[c.PodID] = append(out[c.PodID], c)
	}
	return out
}

// listPodSandboxStats reads the stats of the pods f selects, each at the
// time it is read; concurrent calls with the same filter share one read
// (see shared). The result must not be changed.
func (s *Server) listPodSandboxStats(f *runtime.PodSandboxStatsFilter) []*runtime.PodSandboxStats {
	return s.shared("ListPodSandboxStats", f, func() any {
		sbs := s.listSandboxes(&runtime.PodSandboxFilter{Id: f.GetId(), LabelSelector: f.GetLabelSelector()})
		byPod := s.containersByPod()
		read := make([]*runtime.PodSandboxStats, len(sbs))
		inParallel(len(sbs), func(i int) {
			if sb, err := s.sandboxes.Get(sbs[i].Id); err == nil { // else removed meanwhile
				read[i] = s.podStats(sb, byPod[sb.ID])
			}
		})
		out := make([]*runtime.PodSandboxStats, 0, len(sbs))
		for _, st := range read {
			if st != nil {
				out = append(out, st)
			}
		}
		if f == nil { // kubelet's periodic call
			s.forgetGone()
		}
		return out
	}).([]*runtime.PodSandboxStats)
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
