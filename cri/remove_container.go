package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// RemoveContainer removes the container, forcibly if it runs. api.proto:
// "This call is idempotent, and must not return an error if the container
// has already been removed."
func (s *Server) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if err := s.containers.Remove(ctx, r.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}
