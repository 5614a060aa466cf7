package sandbox

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// State is where a sandbox is in its life.
//
//	RunPodSandbox
//	     │
//	     ▼
//	┌─Creating──────fail──────▶ (rolled back: gone)
//	│    │ ok  └──fail, and so did a rollback step─────────────┐
//	│    ▼                                                     ▼
//	│  Ready ──StopPodSandbox / pause exited / shim died──▶ NotReady
//	│    │                                                     │
//	│    └───────────────RemovePodSandbox (stops first)────────┤
//	│                                                          ▼
//	└──huskd crashed: recovery rolls it back────────────▶ (gone)
//
// Only Ready and NotReady sandboxes are visible through the CRI.
type State int

const (
	StateCreating State = iota
	StateReady
	StateNotReady
)

func (s State) String() string {
	switch s {
	case StateCreating:
		return "creating"
	case StateReady:
		return "ready"
	case StateNotReady:
		return "notready"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// CRI is the state as the CRI names it.
func (s State) CRI() runtime.PodSandboxState {
	if s == StateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

// Namespace kinds a pod pins.
const (
	NSNet = "net"
	NSIPC = "ipc"
	NSUTS = "uts"
	// NSUser is the pod's own user namespace, when it has one.
	NSUser = "user"
)

// Sandbox is one published status of a pod sandbox. It is never modified
// once published: changes go through an update that publishes a copy, so
// readers (ListPodSandbox every second) take no lock on the sandbox.
type Sandbox struct {
	ID             string
	Name           string // the reserved name: <name>_<namespace>_<uid>_<attempt>
	State          State
	CreatedAt      time.Time
	Config         *runtime.PodSandboxConfig
	RuntimeHandler string

	ShimPID    int
	PausePID   int
	CgroupPath string
	// PodCgroup is the pod's own cgroup (cgroup.PodCgroup), with the
	// pause's and the containers' in it, limited to the pod's resources
	// and overhead; empty for a pod in a cgroup_parent (kubelet's).
	PodCgroup string
	// Namespaces maps a namespace kind (NSNet, ...) to its pinned path; a
	// kind missing here is the host's.
	Namespaces map[string]string
	ShmPath    string // empty when the pod uses the host's /dev/shm
	PidMode    runtime.NamespaceMode

	// Reason says why a sandbox is NotReady: "stopped", or what died.
	Reason string
	// Stopped is set once StopPodSandbox has released the pod's processes
	// and mounts; a NotReady sandbox without it still needs cleaning.
	Stopped bool

	// IPs are the pod's addresses from CNI, the first the primary.
	IPs []string
	// NetworkDown is set once CNI DEL has run for the pod.
	NetworkDown bool
}

func (s *Sandbox) clone() *Sandbox {
	c := *s
	return &c
}

// Metadata returns the pod's metadata from its config.
func (s *Sandbox) Metadata() *runtime.PodSandboxMetadata { return s.Config.GetMetadata() }

// record is a Sandbox as written to disk.
type record struct {
	Version        int               `json:"version"`
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	State          string            `json:"state"`
	CreatedAt      time.Time         `json:"createdAt"`
	Config         []byte            `json:"config"` // PodSandboxConfig, protobuf
	RuntimeHandler string            `json:"runtimeHandler,omitempty"`
	ShimPID        int               `json:"shimPid,omitempty"`
	PausePID       int               `json:"pausePid,omitempty"`
	CgroupPath     string            `json:"cgroupPath"`
	PodCgroup      string            `json:"podCgroup,omitempty"`
	Namespaces     map[string]string `json:"namespaces,omitempty"`
	ShmPath        string            `json:"shmPath,omitempty"`
	PidMode        int32             `json:"pidMode"`
	Reason         string            `json:"reason,omitempty"`
	Stopped        bool              `json:"stopped,omitempty"`
	IPs            []string          `json:"ips,omitempty"`
	NetworkDown    bool              `json:"networkDown,omitempty"`
}

const recordVersion = 1

func (s *Sandbox) marshal() ([]byte, error) {
	cfg, err := proto.Marshal(s.Config)
	if err != nil {
		return nil, err
	}
	return json.Marshal(record{
		Version: recordVersion, ID: s.ID, Name: s.Name, State: s.State.String(),
		CreatedAt: s.CreatedAt, Config: cfg, RuntimeHandler: s.RuntimeHandler,
		ShimPID: s.ShimPID, PausePID: s.PausePID, CgroupPath: s.CgroupPath, PodCgroup: s.PodCgroup,
		Namespaces: s.Namespaces, ShmPath: s.ShmPath, PidMode: int32(s.PidMode),
		Reason: s.Reason, Stopped: s.Stopped, IPs: s.IPs, NetworkDown: s.NetworkDown,
	})
}

func unmarshalSandbox(b []byte) (*Sandbox, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("record version %d, want %d", r.Version, recordVersion)
	}
	cfg := &runtime.PodSandboxConfig{}
	if err := proto.Unmarshal(r.Config, cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &Sandbox{
		ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, Config: cfg, RuntimeHandler: r.RuntimeHandler,
		ShimPID: r.ShimPID, PausePID: r.PausePID, CgroupPath: r.CgroupPath, PodCgroup: r.PodCgroup,
		Namespaces: r.Namespaces, ShmPath: r.ShmPath, PidMode: runtime.NamespaceMode(r.PidMode),
		Reason: r.Reason, Stopped: r.Stopped, IPs: r.IPs, NetworkDown: r.NetworkDown,
	}
	switch r.State {
	case "creating":
		s.State = StateCreating
	case "ready":
		s.State = StateReady
	case "notready":
		s.State = StateNotReady
	default:
		return nil, fmt.Errorf("unknown state %q", r.State)
	}
	return s, nil
}
