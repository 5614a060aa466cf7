package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/cgwarm"
	"github.com/huskrt/husk/internal/errdefs"
)

// ExecSync runs a command in a running container and returns its output
// and exit code: kubelet's exec probes, every few seconds in every pod. At
// the timeout the command is killed and the call fails with
// DeadlineExceeded (kubelet then counts the probe as timed out); the
// container goes on.
func (s *Server) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "must not be empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errdefs.InvalidArgument("timeout", "%d is negative", r.GetTimeout())
	}
	cgwarm.Warm() // the process will be placed in the container's cgroups
	res, err := s.containers.ExecSync(ctx, r.GetContainerId(), r.GetCmd(), time.Duration(r.GetTimeout())*time.Second)
	if err != nil {
		return nil, err
	}
	stdout, stderr := fitMessage(res.Stdout, res.Stderr, MaxMessage-4096)
	return &runtime.ExecSyncResponse{Stdout: stdout, Stderr: stderr, ExitCode: int32(res.ExitCode)}, nil
}

// fitMessage trims two outputs so that together they fit in budget bytes
// (a reply kubelet cannot read is no reply): each keeps its beginning, and
// neither gets less than half unless the other needs less.
func fitMessage(stdout, stderr []byte, budget int) ([]byte, []byte) {
	if len(stdout)+len(stderr) <= budget {
		return stdout, stderr
	}
	half := budget / 2
	switch {
	case len(stderr) <= half:
		return stdout[:budget-len(stderr)], stderr
	case len(stdout) <= half:
		return stdout, stderr[:budget-len(stdout)]
	}
	return stdout[:half], stderr[:budget-half]
}
