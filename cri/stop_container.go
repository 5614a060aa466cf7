package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// StopContainer stops a running container with a grace period (timeout,
// in seconds): the stop signal first, SIGKILL to every process of the
// container once it has passed. api.proto: "This call is idempotent, and
// must not return an error if the container has already been stopped."
func (s *Server) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errdefs.InvalidArgument("timeout", "%d is negative", r.GetTimeout())
	}
	if err := s.containers.Stop(ctx, r.GetContainerId(), time.Duration(r.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}
