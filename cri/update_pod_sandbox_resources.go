package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// validateUpdatePodSandboxResources checks the new resources and overhead
// as RunPodSandbox checks the first ones.
func validateUpdatePodSandboxResources(r *runtime.UpdatePodSandboxResourcesRequest, node Node) error {
	if r.GetPodSandboxId() == "" {
		return errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	if err := validatePodResources("", r.GetResources(), r.GetOverhead(), node); err != nil {
		return err
	}
	return checkStrings("", r.ProtoReflect())
}

// UpdatePodSandboxResources records a pod's new pod-level resources and
// overhead, which PodSandboxStatus's verbose config shows afterwards. In a
// pod with its own cgroup (no cgroup_parent) husk writes their sum there,
// all or none: a value the kernel refuses (memory below what the pod
// uses) answers FailedPrecondition and leaves the old limits. A pod in a
// cgroup_parent is in kubelet's pod cgroup, which kubelet resizes itself
// (api.proto: this call is kubelet telling the runtime; kubelet 1.37 makes
// it just before SetPodCgroupConfig and takes an error as the runtime
// rejecting the resize): husk only records.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, r *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if err := validateUpdatePodSandboxResources(r, s.opts.Node); err != nil {
		return nil, err
	}
	if err := s.sandboxes.UpdateResources(ctx, r.GetPodSandboxId(), r.GetOverhead(), r.GetResources()); err != nil {
		return nil, err
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}
