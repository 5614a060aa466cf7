package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// Exec returns the streaming server's URL for a command in a running
// container (kubectl exec). The session itself starts when the client
// connects to the URL.
func (s *Server) Exec(_ context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "must not be empty")
	}
	if err := validStreams(r.GetTty(), r.GetStdin(), r.GetStdout(), r.GetStderr()); err != nil {
		return nil, err
	}
	c, err := s.containers.Running(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	req := proto.Clone(r).(*runtime.ExecRequest)
	req.ContainerId = c.ID
	return s.opts.Streaming.GetExec(req)
}

// validStreams checks the stream choice shared by Exec and Attach.
func validStreams(tty, stdin, stdout, stderr bool) error {
	if tty && stderr {
		return errdefs.InvalidArgument("stderr", "must be false with tty: a terminal has one output")
	}
	if !stdin && !stdout && !stderr {
		return errdefs.InvalidArgument("stdin", "one of stdin, stdout and stderr must be set")
	}
	return nil
}
