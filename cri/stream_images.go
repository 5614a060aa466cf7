package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamImages returns the same items as ListImages, in batches of at
// least one item; each item appears once, then the stream ends.
func (s *Server) StreamImages(r *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	items := s.listImages(r.GetFilter())
	for len(items) > 0 {
		n := min(len(items), streamBatch)
		if err := stream.Send(&runtime.StreamImagesResponse{Images: items[:n]}); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
