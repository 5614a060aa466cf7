package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/image"
	"github.com/huskrt/husk/internal/errdefs"
)

// PullImage pulls an image with authentication config. The response's
// image_ref is the image's ID, the same every other call reports for it.
// Credentials go only to the registry they are for (auth.server_address,
// else the image's registry; see image.Auth) and are never logged.
func (s *Server) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	if r.GetImage().GetImage() == "" {
		return nil, errdefs.InvalidArgument("image.image", "must not be empty")
	}
	a := r.GetAuth()
	id, err := s.images.Pull(ctx, r.GetImage().GetImage(), image.Auth{
		Username:      a.GetUsername(),
		Password:      a.GetPassword(),
		Auth:          a.GetAuth(),
		IdentityToken: a.GetIdentityToken(),
		RegistryToken: a.GetRegistryToken(),
		ServerAddress: a.GetServerAddress(),
	})
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: id}, nil
}
