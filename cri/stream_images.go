package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamImages returns the same items as ListImages, in batches of at
// least one item; each item appears once, then the stream ends.
func (s *Server) StreamImages(r *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	return sendBatches(s.listImages(r.GetFilter()), stream.Send, func(b []*runtime.Image) *runtime.StreamImagesResponse {
		return &runtime.StreamImagesResponse{Images: b}
	})
}
