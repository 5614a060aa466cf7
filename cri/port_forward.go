package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// PortForward returns the streaming server's URL for forwarding to TCP
// ports on a ready pod's loopback (kubectl port-forward).
func (s *Server) PortForward(_ context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	for _, p := range r.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, errdefs.InvalidArgument("port", "%d is not a TCP port", p)
		}
	}
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if _, err := s.sandboxes.NetNS(sb.ID); err != nil {
		return nil, err
	}
	req := proto.Clone(r).(*runtime.PortForwardRequest)
	req.PodSandboxId = sb.ID
	return s.opts.Streaming.GetPortForward(req)
}
