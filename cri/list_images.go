package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *Server) listImages(f *runtime.ImageFilter) []*runtime.Image {
	if spec := f.GetImage().GetImage(); spec != "" {
		img, err := s.images.Resolve(spec)
		if err != nil {
			return nil // a filter that matches nothing is no error
		}
		return []*runtime.Image{criImage(img)}
	}
	all := s.images.List()
	out := make([]*runtime.Image, 0, len(all))
	for _, img := range all {
		out = append(out, criImage(img))
	}
	return out
}

// ListImages lists existing images, or the one the filter names (by
// reference or ID).
func (s *Server) ListImages(_ context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	return &runtime.ListImagesResponse{Images: s.listImages(r.GetFilter())}, nil
}
