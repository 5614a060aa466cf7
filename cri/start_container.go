package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// StartContainer starts the container.
func (s *Server) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if err := s.containers.Start(ctx, r.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}
