package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// ReopenContainerLog asks the shim to reopen the container's log file,
// after kubelet renamed it to rotate it. A container that is not running
// gets FailedPrecondition and no new file (api.proto allows either).
func (s *Server) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if err := s.containers.ReopenLog(ctx, r.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
