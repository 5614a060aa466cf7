package cri

import (
	"context"
	"encoding/json"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/sandbox"
)

// sandboxInfo is the verbose "info" of PodSandboxStatus, shaped like
// containerd's so that tools reading one read the other.
type sandboxInfo struct {
	Pid            int                       `json:"pid"`
	ShimPid        int                       `json:"shimPid"`
	State          string                    `json:"state"`
	Reason         string                    `json:"reason,omitempty"`
	CgroupPath     string                    `json:"cgroupPath"`
	PodCgroupPath  string                    `json:"podCgroupPath,omitempty"` // the pod's own cgroup, when it has one
	Namespaces     map[string]string         `json:"namespaces"`
	ShmPath        string                    `json:"shmPath,omitempty"`
	RuntimeHandler string                    `json:"runtimeHandler"`
	Config         *runtime.PodSandboxConfig `json:"config"`
}

// PodSandboxStatus returns the status of the PodSandbox and of its
// containers, and when it read them. If the PodSandbox is not present,
// returns an error (NotFound).
func (s *Server) PodSandboxStatus(_ context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	// With its EventedPLEG gate on, kubelet takes the pod's containers
	// from here instead of listing them whenever timestamp is set
	// (kuberuntime_manager.go's GetPodStatus): without them it sees none,
	// and creates them again and again.
	resp := &runtime.PodSandboxStatusResponse{
		Status:             podSandboxStatus(sb),
		ContainersStatuses: s.podContainerStatuses(sb.ID, nil),
		Timestamp:          time.Now().UnixNano(),
	}
	if r.GetVerbose() {
		info := sandboxInfo{
			Pid: sb.PausePID, ShimPid: sb.ShimPID, State: sb.State.String(), Reason: sb.Reason,
			CgroupPath: sb.CgroupPath, PodCgroupPath: sb.PodCgroup, Namespaces: sb.Namespaces, ShmPath: sb.ShmPath,
			RuntimeHandler: sb.RuntimeHandler, Config: sb.Config,
		}
		if info.Namespaces == nil {
			info.Namespaces = map[string]string{}
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// podContainerStatuses is the statuses of a pod's containers, newest
// first as kubelet sorts those it lists; at, if not nil, is one of them in
// the state to show (an event's, which the list may have passed).
func (s *Server) podContainerStatuses(podID string, at *container.Container) []*runtime.ContainerStatus {
	out := []*runtime.ContainerStatus{}
	all := s.containers.List()
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		if c.PodID != podID {
			continue
		}
		if at != nil && c.ID == at.ID {
			c = at
		}
		out = append(out, containerStatus(c))
	}
	return out
}

func podSandboxStatus(sb *sandbox.Sandbox) *runtime.PodSandboxStatus {
	cfg := sb.Config
	return &runtime.PodSandboxStatus{
		Id:        sb.ID,
		Metadata:  cfg.GetMetadata(),
		State:     sb.State.CRI(),
		CreatedAt: sb.CreatedAt.UnixNano(),
		Network:   networkStatus(sb.IPs),
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
	}
}

// networkStatus is the pod's addresses: the first is ip, any others (the
// second family of a dual-stack pod) additional_ips.
func networkStatus(ips []string) *runtime.PodSandboxNetworkStatus {
	st := &runtime.PodSandboxNetworkStatus{}
	for i, ip := range ips {
		if i == 0 {
			st.Ip = ip
		} else {
			st.AdditionalIps = append(st.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}
