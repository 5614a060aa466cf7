package container

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container/apparmor"
	"github.com/huskrt/husk/image"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/internal/names"
	"github.com/huskrt/husk/internal/nri"
	"github.com/huskrt/husk/sandbox"
)

// Config is what the manager needs to know about the node.
type Config struct {
	// Root holds <root>/containers/<id>: the record, upper and work.
	Root string
	Node NodeInfo
	// CreateTimeout bounds one CreateContainer once started, whether or
	// not its caller still waits.
	CreateTimeout time.Duration
	// AppArmor loads husk's default profile for the containers that use
	// it; nil when the node has no AppArmor.
	AppArmor *apparmor.Loader
	// CDI resolves the CDI devices containers ask for; nil when CDI is
	// off.
	CDI *CDI
	// NRI tells NRI plugins of each container's steps and lets them
	// adjust its spec; nil when NRI is off.
	NRI *nri.NRI
}

// Manager runs app containers in pods. It is the sandbox manager's
// observer: shim snapshots keep its containers' states current.
type Manager struct {
	cfg       Config
	sandboxes *sandbox.Manager
	images    *image.Service
	names     *names.Registrar

	mu   sync.RWMutex
	ctrs map[string]*entry

	// orphans are containers a shim knows that huskd has no record of (a
	// crash between the shim's create and the record), by pod.
	orphanMu sync.Mutex
	orphans  map[string][]string

	onEvent EventFunc // set before Load; nil: nobody listens
}

// New returns a manager; call Load before the sandbox manager recovers,
// and Reconcile after.
func New(cfg Config, sandboxes *sandbox.Manager, images *image.Service) (*Manager, error) {
	// Writable layers are for root only (cmd/huskd's dirs.go says why).
	if err := os.MkdirAll(filepath.Join(cfg.Root, "containers"), 0o700); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, sandboxes: sandboxes, images: images, names: names.New("container"),
		ctrs: map[string]*entry{}, orphans: map[string][]string{}}
	sandboxes.SetObserver(m)
	return m, nil
}

func (m *Manager) dir(id string) string { return filepath.Join(m.cfg.Root, "containers", id) }

// UpperDir is the container's writable layer.
func (m *Manager) UpperDir(id string) string { return filepath.Join(m.dir(id), "upper") }

func bundleDir(sandboxes *sandbox.Manager, podID, id string) string {
	return filepath.Join(sandboxes.StateDir(podID), "containers", id)
}

// ContainerName is the name that makes a container unique in its pod.
func ContainerName(c *runtime.ContainerMetadata, p *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", c.GetName(), p.GetName(), p.GetNamespace(), p.GetUid(), c.GetAttempt())
}

// lookup finds a container by ID or unique prefix.
func (m *Manager) lookup(idOrPrefix string) (*entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return ids.Find(m.ctrs, idOrPrefix, "container", "container_id")
}

// Get returns a container by ID or unique prefix.
func (m *Manager) Get(idOrPrefix string) (*Container, error) {
	e, err := m.lookup(idOrPrefix)
	if err != nil {
		return nil, err
	}
	return e.cur.Load(), nil
}

// List returns every container, oldest first.
func (m *Manager) List() []*Container {
	m.mu.RLock()
	out := make([]*Container, 0, len(m.ctrs))
	for _, e := range m.ctrs {
		out = append(out, e.cur.Load())
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}
