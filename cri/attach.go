package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// Attach returns the streaming server's URL for attaching to a running
// container's stdio (kubectl attach).
func (s *Server) Attach(_ context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if r.GetTty() && r.GetStderr() {
		return nil, errdefs.InvalidArgument("stderr", "must be false with tty: a terminal has one output")
	}
	if !r.GetStdin() && !r.GetStdout() && !r.GetStderr() {
		return nil, errdefs.InvalidArgument("stdin", "one of stdin, stdout and stderr must be set")
	}
	id, err := s.runningContainer(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	c, _ := s.containers.Get(id)
	if r.GetStdin() && !c.Config.GetStdin() {
		return nil, errdefs.FailedPrecondition("container %s was not created with stdin", id)
	}
	if r.GetTty() != c.Config.GetTty() {
		return nil, errdefs.InvalidArgument("tty", "is %t but container %s has tty=%t", r.GetTty(), id, c.Config.GetTty())
	}
	req := proto.Clone(r).(*runtime.AttachRequest)
	req.ContainerId = id
	return s.opts.Streaming.GetAttach(req)
}
