package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamBatch is how many items one streamed response carries: well under
// gRPC's message limit for any pod or container.
const streamBatch = 256

// StreamPodSandboxes returns the same items as ListPodSandbox, in batches
// of at least one item; each item appears once, then the stream ends.
func (s *Server) StreamPodSandboxes(r *runtime.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	items := s.listSandboxes(r.GetFilter())
	for len(items) > 0 {
		n := min(len(items), streamBatch)
		if err := stream.Send(&runtime.StreamPodSandboxesResponse{PodSandboxes: items[:n]}); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
