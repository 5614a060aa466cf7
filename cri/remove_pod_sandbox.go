package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// RemovePodSandbox removes the sandbox, stopping it first if it runs.
// api.proto: "This call is idempotent, and must not return an error if the
// sandbox has already been removed."
func (s *Server) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	if err := s.sandboxes.Remove(ctx, r.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}
