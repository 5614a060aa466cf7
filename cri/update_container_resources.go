package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// UpdateContainerResources applies new resources to a created or running
// container, live, and ContainerStatus reports them afterwards.
func (s *Server) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if r.GetLinux() == nil {
		return nil, errdefs.InvalidArgument("linux", "missing")
	}
	if err := s.containers.UpdateResources(ctx, r.GetContainerId(), r.GetLinux()); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
