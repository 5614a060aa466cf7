package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status returns the status of the runtime: whether it can run pods
// (RuntimeReady) and whether it can give them a network (NetworkReady).
// kubelet schedules no pod-network pod while NetworkReady is false.
// Verbose adds the effective configuration under "config".
func (s *Server) Status(_ context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
			{Type: runtime.RuntimeReady, Status: true},
			{
				Type:    runtime.NetworkReady,
				Status:  false,
				Reason:  "NetworkPluginNotReady",
				Message: "husk has no pod network yet: pods on their own network namespace get loopback only",
			},
		}},
		Features: &runtime.RuntimeFeatures{},
	}
	for _, h := range Handlers {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{
			Name:     h,
			Features: &runtime.RuntimeHandlerFeatures{},
		})
	}
	if r.GetVerbose() {
		s.mu.Lock()
		cidr := s.podCIDR
		s.mu.Unlock()
		resp.Info = map[string]string{"config": s.opts.ConfigJSON, "podCIDR": cidr}
	}
	return resp, nil
}
