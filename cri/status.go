package cri

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status returns the status of the runtime: whether it can run pods
// (RuntimeReady) and whether it can give them a network (NetworkReady).
// kubelet schedules no pod-network pod while NetworkReady is false.
// Verbose adds the effective configuration under "config", and the
// counts of GetContainerEvents (subscribers, events published, slow
// subscribers dropped and the events they lost) under "containerEvents".
func (s *Server) Status(_ context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
			{Type: runtime.RuntimeReady, Status: true},
			s.networkCondition(),
		}},
		Features: &runtime.RuntimeFeatures{
			SupplementalGroupsPolicy: true,
			// A mount's mount_options (noexec, nodev, nosuid and the
			// other restricting bind options) reach libcontainer, whose
			// remount of the bind applies them (TestBindMountOptions).
			// kubelet refuses pods asking for them from a runtime that
			// does not say so (KEP-5855).
			MountOptions: true,
			// A pod in its own user namespace may have the host's
			// network wherever it may have a user namespace at all
			// (KEP-5607): its containers get the host's /sys bound, as
			// they cannot mount a sysfs. TestUserNamespaceHostNetwork
			// checks that such a pod runs when this says so, and only
			// then.
			UserNamespacesHostNetwork: s.opts.UserNamespaces,
		},
	}
	for _, h := range s.opts.Handlers {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{
			Name:     h,
			Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: recursiveReadOnlyMounts(), UserNamespaces: s.opts.UserNamespaces},
		})
	}
	if r.GetVerbose() {
		s.mu.Lock()
		cidr := s.podCIDR
		s.mu.Unlock()
		events, _ := json.Marshal(s.events.Stats())
		resp.Info = map[string]string{"config": s.opts.ConfigJSON, "podCIDR": cidr, "containerEvents": string(events)}
	}
	return resp, nil
}

// networkCondition is NetworkReady: true once a CNI configuration whose
// plugins are installed is loaded (kubelet schedules no pod-network pod
// before).
func (s *Server) networkCondition() *runtime.RuntimeCondition {
	c := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	err := errors.New("no CNI network is configured")
	if s.opts.Network != nil {
		err = s.opts.Network.Ready()
	}
	if err != nil {
		c.Status, c.Reason, c.Message = false, "NetworkPluginNotReady", err.Error()
	}
	return c
}

// recursiveReadOnlyMounts says whether the kernel has mount_setattr(2)
// (Linux 5.12), which libcontainer needs for "rro" mounts. With a bad
// descriptor the call fails with EBADF where it exists, ENOSYS where not.
var recursiveReadOnlyMounts = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return err != unix.ENOSYS
})
