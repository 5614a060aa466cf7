package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/cgroup"
)

// RuntimeConfig tells kubelet which cgroup driver husk uses, so that the
// two agree on where pod cgroups live: kubelet (KubeletCgroupDriverFromCRI,
// on by default) takes the runtime's answer over its own cgroupDriver
// setting. It refuses to start against a runtime that answers
// Unimplemented here.
func (s *Server) RuntimeConfig(_ context.Context, _ *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.sandboxes.CgroupDriver() == cgroup.Systemd {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{
		Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver},
	}, nil
}
