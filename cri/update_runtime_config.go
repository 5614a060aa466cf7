package cri

import (
	"context"
	"net/netip"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
)

// validatePodCIDR checks kubelet's pod CIDR: empty, or one or two CIDRs
// separated by a comma (dual stack).
func validatePodCIDR(cidr string) error {
	if cidr == "" {
		return nil
	}
	parts := strings.Split(cidr, ",")
	if len(parts) > 2 {
		return errdefs.InvalidArgument("runtime_config.network_config.pod_cidr", "at most two CIDRs, got %d", len(parts))
	}
	for _, p := range parts {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			return errdefs.InvalidArgument("runtime_config.network_config.pod_cidr", "%q is not a CIDR", p)
		}
	}
	return nil
}

// UpdateRuntimeConfig records the node's pod CIDR, which kubelet sends once
// the node has one. The built-in network will allocate from it.
func (s *Server) UpdateRuntimeConfig(_ context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if err := validatePodCIDR(cidr); err != nil {
		return nil, err
	}
	if cidr == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	s.mu.Lock()
	changed := s.podCIDR != cidr
	s.podCIDR = cidr
	s.mu.Unlock()
	if changed {
		klog.InfoS("Pod CIDR updated", "podCIDR", cidr)
	}
	if s.opts.Network != nil {
		s.opts.Network.SetPodCIDR(cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
