package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamPodSandboxes returns the same items as ListPodSandbox, in batches
// of at least one item; each item appears once, then the stream ends.
func (s *Server) StreamPodSandboxes(r *runtime.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	return sendBatches(s.listSandboxes(r.GetFilter()), stream.Send, func(b []*runtime.PodSandbox) *runtime.StreamPodSandboxesResponse {
		return &runtime.StreamPodSandboxesResponse{PodSandboxes: b}
	})
}
