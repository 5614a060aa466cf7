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
	if err := validStreams(r.GetTty(), r.GetStdin(), r.GetStdout(), r.GetStderr()); err != nil {
		return nil, err
	}
	c, err := s.containers.Running(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	id := c.ID
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
