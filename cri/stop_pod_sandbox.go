package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// StopPodSandbox stops every process of the sandbox and reclaims what it
// holds. api.proto: "This call is idempotent, and must not return an error
// if all relevant resources have already been reclaimed" — so an unknown ID
// is success too.
func (s *Server) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	if err := s.sandboxes.Stop(ctx, r.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}
