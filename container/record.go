package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/shim/shimapi"
)

// record is a container as written to disk: what it was created with,
// and how it ended once huskd knows. Its state lives with the shim, in
// the pod's state directory, which a reboot empties (tmpfs): the end
// huskd saw is kept here, on the root, so that a container that exited
// before a reboot still reports its own exit code after it (kubelet does
// not run again a container of an OnFailure pod that succeeded).
type record struct {
	Version      int            `json:"version"`
	ID           string         `json:"id"`
	PodID        string         `json:"podID"`
	Name         string         `json:"name"`
	Config       []byte         `json:"config"`
	ImageID      string         `json:"imageID"`
	CreatedAt    time.Time      `json:"createdAt"`
	LogPath      string         `json:"logPath,omitempty"`
	Bundle       string         `json:"bundle"`
	CgroupPath   string         `json:"cgroupPath"`
	User         User           `json:"user"`
	Resources    []byte         `json:"resources,omitempty"`
	StopSignal   string         `json:"stopSignal"`
	ImageVolumes map[int]string `json:"imageVolumes,omitempty"`
	// UnseenExit is the exit huskd declared for it, when nobody saw it end.
	UnseenExit *UnseenExit `json:"unseenExit,omitempty"`
	// Exit is the container's state once it exited, nil before.
	Exit *shimapi.ContainerState `json:"exit,omitempty"`
}

const recordVersion = 1

func writeRecord(dir string, c *Container) error {
	cfg, err := proto.Marshal(c.Config)
	if err != nil {
		return err
	}
	var res []byte
	if c.Resources != nil {
		if res, err = proto.Marshal(c.Resources); err != nil {
			return err
		}
	}
	var exit *shimapi.ContainerState
	if c.State.Status == shimapi.StatusExited {
		exit = &c.State
	}
	b, err := json.Marshal(record{
		Version: recordVersion, ID: c.ID, PodID: c.PodID, Name: c.Name, Config: cfg, ImageID: c.ImageID,
		CreatedAt: c.CreatedAt, LogPath: c.LogPath, Bundle: c.Bundle, CgroupPath: c.CgroupPath, User: c.User,
		Resources: res, StopSignal: c.StopSignal, ImageVolumes: c.ImageVolumes, UnseenExit: c.UnseenExit,
		Exit: exit,
	})
	if err != nil {
		return err
	}
	return renameio.WriteFile(filepath.Join(dir, "container.json"), b, 0o600)
}

func readRecord(dir string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(dir, "container.json"))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("record version %d, want %d", r.Version, recordVersion)
	}
	c := &Container{
		ID: r.ID, PodID: r.PodID, Name: r.Name, Config: &runtime.ContainerConfig{}, ImageID: r.ImageID,
		CreatedAt: r.CreatedAt, LogPath: r.LogPath, Bundle: r.Bundle, CgroupPath: r.CgroupPath, User: r.User,
		StopSignal: r.StopSignal, ImageVolumes: r.ImageVolumes, UnseenExit: r.UnseenExit,
	}
	if r.Exit != nil && r.Exit.Status == shimapi.StatusExited && r.Exit.ID == r.ID {
		c.State = *r.Exit
	}
	if err := proto.Unmarshal(r.Config, c.Config); err != nil {
		return nil, err
	}
	if len(r.Resources) > 0 {
		c.Resources = &runtime.LinuxContainerResources{}
		if err := proto.Unmarshal(r.Resources, c.Resources); err != nil {
			return nil, err
		}
	}
	return c, nil
}
