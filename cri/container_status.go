package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/shim/shimapi"
)

func criState(st shimapi.ContainerState) runtime.ContainerState {
	switch st.Status {
	case shimapi.StatusCreated:
		return runtime.ContainerState_CONTAINER_CREATED
	case shimapi.StatusRunning:
		return runtime.ContainerState_CONTAINER_RUNNING
	case shimapi.StatusExited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// criMounts is the config's mounts as ContainerStatus shows them: an image
// volume names the image it mounted.
func criMounts(c *container.Container) []*runtime.Mount {
	out := make([]*runtime.Mount, 0, len(c.Config.GetMounts()))
	for i, m := range c.Config.GetMounts() {
		m = proto.Clone(m).(*runtime.Mount)
		if id, ok := c.ImageVolumes[i]; ok {
			m.Image = &runtime.ImageSpec{Image: m.GetImage().GetImage(), ImageRef: id}
		}
		out = append(out, m)
	}
	return out
}

type containerInfo struct {
	SandboxID   string                   `json:"sandboxID"`
	Pid         int                      `json:"pid"`
	Bundle      string                   `json:"bundle"`
	CgroupPath  string                   `json:"cgroupPath"`
	RuntimeSpec json.RawMessage          `json:"runtimeSpec,omitempty"`
	Config      *runtime.ContainerConfig `json:"config"`
}

// ContainerStatus returns status of the container. If the container is
// not present, returns an error (NotFound).
func (s *Server) ContainerStatus(_ context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.InvalidArgument("container_id", "must not be empty")
	}
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: containerStatus(c)}
	if r.GetVerbose() {
		st := c.State
		info := containerInfo{SandboxID: c.PodID, Pid: st.PID, Bundle: c.Bundle, CgroupPath: c.CgroupPath, Config: c.Config}
		if b, err := os.ReadFile(filepath.Join(c.Bundle, "config.json")); err == nil {
			info.RuntimeSpec = b
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// statusImage is the image a container's status and listing show: the
// name the pod's author wrote (user_specified_image) when the caller gave
// it. kubelet creates a container from the image's ID and passes the name
// beside it, then shows status.image.image as the pod's containerStatuses
// image, which users and kubelet's own tests compare with the pod spec's
// (containerd shows the image's first tag, CRI-O the name asked for).
// Without it, the reference the container was created from.
func statusImage(c *container.Container) *runtime.ImageSpec {
	spec := c.Config.GetImage()
	name := spec.GetUserSpecifiedImage()
	if name == "" {
		name = spec.GetImage()
	}
	return &runtime.ImageSpec{Image: name, UserSpecifiedImage: spec.GetUserSpecifiedImage()}
}

// containerStatus is the CRI's status of c, as ContainerStatus and the
// container events show it.
func containerStatus(c *container.Container) *runtime.ContainerStatus {
	st := c.State
	status := &runtime.ContainerStatus{
		Id:          c.ID,
		Metadata:    c.Config.GetMetadata(),
		State:       criState(st),
		CreatedAt:   nanos(c.CreatedAt),
		StartedAt:   nanos(st.StartedAt),
		FinishedAt:  nanos(st.FinishedAt),
		ExitCode:    int32(st.ExitCode),
		Image:       statusImage(c),
		ImageRef:    c.ImageID,
		ImageId:     c.ImageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      c.Config.GetLabels(),
		Annotations: c.Config.GetAnnotations(),
		Mounts:      criMounts(c),
		LogPath:     c.LogPath,
		Resources:   &runtime.ContainerResources{Linux: c.Resources},
		User: &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{
			Uid: c.User.UID, Gid: c.User.GID, SupplementalGroups: c.User.SupplementalGroups,
		}},
		StopSignal: signalEnum(c.StopSignal),
	}
	if st.Status == shimapi.StatusCreated || st.Status == shimapi.StatusRunning {
		status.ExitCode, status.Reason = 0, ""
	}
	return status
}

// signalEnum is the CRI's name of a signal ("SIGTERM" → SIGNAL_SIGTERM).
func signalEnum(name string) runtime.Signal {
	name = strings.ToUpper(name)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if v, ok := runtime.Signal_value["SIGNAL_"+name]; ok {
		return runtime.Signal(v)
	}
	return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
}
