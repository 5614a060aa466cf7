package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// validateUpdateResources checks an update as CreateContainer checks the
// resources it starts with: a value the kernel refuses would otherwise
// fail in libcontainer as Unknown.
func validateUpdateResources(r *runtime.UpdateContainerResourcesRequest, node Node) error {
	if r.GetContainerId() == "" {
		return errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if r.GetLinux() == nil {
		return errdefs.InvalidArgument("linux", "missing")
	}
	if err := validateResources("linux", r.GetLinux(), node); err != nil {
		return err
	}
	if err := checkAnnotations("annotations", r.GetAnnotations()); err != nil {
		return err
	}
	return checkStrings("", r.ProtoReflect())
}

// UpdateContainerResources applies new resources to a created or running
// container, live, and ContainerStatus reports them afterwards.
func (s *Server) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if err := validateUpdateResources(r, s.opts.Node); err != nil {
		return nil, err
	}
	if err := s.containers.UpdateResources(ctx, r.GetContainerId(), r.GetLinux()); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
