package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeConfig tells kubelet which cgroup driver husk uses, so that the
// two agree on where pod cgroups live. kubelet refuses to start against a
// runtime that answers Unimplemented here.
func (s *Server) RuntimeConfig(_ context.Context, _ *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return &runtime.RuntimeConfigResponse{
		Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: runtime.CgroupDriver_CGROUPFS},
	}, nil
}
