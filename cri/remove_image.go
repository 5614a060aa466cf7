package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// RemoveImage removes the image with all its tags, whether the request
// names it by ID, digest or one of its tags. api.proto (cri-api v0.37):
// "removing the image by a single tag will remove all of its tags" (even
// across repositories), and "This call is idempotent, and must not return
// an error if the image has already been removed."
func (s *Server) RemoveImage(_ context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	if r.GetImage().GetImage() == "" {
		return nil, errdefs.InvalidArgument("image.image", "must not be empty")
	}
	if err := s.images.Remove(r.GetImage().GetImage()); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
