package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// RemoveImage removes the image. By ID (or digest) it removes the image
// with all its tags; by a tag, only that tag while the image has others.
// api.proto: "This call is idempotent, and must not return an error if the
// image has already been removed."
func (s *Server) RemoveImage(_ context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	if r.GetImage().GetImage() == "" {
		return nil, errdefs.InvalidArgument("image.image", "must not be empty")
	}
	if err := s.images.Remove(r.GetImage().GetImage()); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
