package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/renameio/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/container/apparmor"
	"github.com/huskrt/husk/image"
	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/internal/names"
	"github.com/huskrt/husk/internal/undo"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
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
}

// Container is one published state of a container. It is never modified
// once published.
type Container struct {
	ID         string
	PodID      string
	Name       string // the reserved name
	Config     *runtime.ContainerConfig
	ImageID    string
	CreatedAt  time.Time
	LogPath    string // absolute; empty without a log
	Bundle     string
	CgroupPath string
	User       User
	Resources  *runtime.LinuxContainerResources
	// StopSignal is the signal StopContainer sends first, by name.
	StopSignal string
	// ImageVolumes maps the index of an image mount to the image's ID.
	ImageVolumes map[int]string

	// State is what the shim last reported.
	State shimapi.ContainerState
	// seq is the Seq of the newest shim snapshot State was taken from.
	seq uint64
}

type entry struct {
	// mu serialises lifecycle calls on one container. They hold it across
	// calls to the shim, which snapshots must not wait for: the published
	// state has its own lock, statusMu.
	mu      sync.Mutex
	removed bool

	// statusMu orders the changes of cur, all made by update.
	statusMu sync.Mutex
	cur      atomic.Pointer[Container]
}

func newEntry(c *Container) *entry {
	e := &entry{}
	e.cur.Store(c)
	return e
}

// update publishes a copy of the current container changed by fn, and
// returns it. It is the only writer of cur: fn sees the state as it is,
// so no change is lost to another made meanwhile (a shim snapshot against
// Stop's reply, or against UpdateResources' new resources).
func (e *entry) update(fn func(*Container)) *Container {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	c := *e.cur.Load()
	fn(&c)
	e.cur.Store(&c)
	return &c
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

// Create creates a container in a Ready pod from a validated config and
// returns its ID. A retry of a call still running gets that call's
// container.
func (m *Manager) Create(ctx context.Context, podID string, cfg *runtime.ContainerConfig) (string, error) {
	sb, err := m.sandboxes.Get(podID)
	if err != nil {
		return "", err
	}
	if sb.State != sandbox.StateReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready (%s)", sb.ID, sb.Reason)
	}
	name := ContainerName(cfg.GetMetadata(), sb.Metadata())
	id := ids.New()
	var r *names.Reservation
	for {
		var owner bool
		if r, owner = m.names.Reserve(name, id); owner {
			break
		}
		got, retry, err := m.names.Claim(ctx, name, r)
		if err != nil {
			return "", err
		}
		if !retry {
			return got, nil
		}
	}
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CreateTimeout)
	defer cancel()
	err = m.create(work, id, name, sb, cfg)
	m.names.Finish(name, r, err, ctx.Err() != nil)
	if err != nil {
		return "", err
	}
	return id, nil
}

func (m *Manager) create(ctx context.Context, id, name string, sb *sandbox.Sandbox, cfg *runtime.ContainerConfig) (retErr error) {
	start := time.Now()
	img, err := m.images.Resolve(cfg.GetImage().GetImage())
	if err != nil {
		return fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), err)
	}
	var u undo.Stack
	dir := m.dir(id)
	bundle := bundleDir(m.sandboxes, sb.ID, id)
	defer func() {
		if retErr == nil {
			return
		}
		if uerr := u.Run(ctx, "CreateContainer", "podSandboxID", sb.ID, "containerID", id); uerr != nil {
			retErr = m.keepFailed(failedCreate{id: id, name: name, sb: sb, cfg: cfg, imageID: img.ID, start: start, dir: dir, bundle: bundle}, retErr, uerr)
		}
	}()

	layers, err := m.images.Lease(id, img.ID)
	if err != nil {
		return err
	}
	u.AddRecord(func(context.Context) error { return m.images.Release(id) })
	imgCfg, err := m.imageConfig(img.ID)
	if err != nil {
		return err
	}
	users := readUserDB(layers)

	rootfs := filepath.Join(bundle, "rootfs")
	u.AddRecord(func(context.Context) error { return os.RemoveAll(dir) })
	u.AddRecord(func(context.Context) error { return os.RemoveAll(bundle) })
	if err := makeContainerDirs(sb, dir, bundle); err != nil {
		return err
	}
	uidMaps, gidMaps := podMappings(sb)
	if err := mountRootfs(layers, dir, bundle, rootfs, sb.Namespaces[sandbox.NSUser], uidMaps, gidMaps); err != nil {
		return err
	}
	u.Add(func(context.Context) error { return layer.Unmount(rootfs) })

	imageVolumes, volumeIDs := map[int]string{}, map[int]string{}
	for i, mnt := range cfg.GetMounts() {
		if mnt.GetImage().GetImage() == "" {
			continue
		}
		p, volID, err := m.mountImageVolume(id, bundle, i, mnt, &u)
		if err != nil {
			return err
		}
		imageVolumes[i], volumeIDs[i] = p, volID
	}

	targetPID := 0
	if opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); opts.GetPid() == runtime.NamespaceMode_TARGET {
		t, err := m.Get(opts.GetTargetId())
		if err != nil || t.PodID != sb.ID {
			return errdefs.NotFound("target container %q of the PID namespace not found in pod %s", opts.GetTargetId(), sb.ID)
		}
		if t.State.Status != shimapi.StatusRunning {
			return errdefs.FailedPrecondition("target container %s of the PID namespace is not running", t.ID)
		}
		targetPID = t.State.PID
	}

	spec, user, err := Spec(SpecInput{
		ID: id, Config: cfg, Image: imgCfg, ImageID: img.ID,
		Sandbox: SandboxInfo{
			ID: sb.ID, Namespaces: sb.Namespaces, PausePID: sb.PausePID,
			UIDMappings: uidMaps, GIDMappings: gidMaps,
			Options:      sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			CgroupParent: sb.CgroupParent(),
			HostnamePath: m.sandboxes.PodFile(sb.ID, "hostname"),
			HostsPath:    m.sandboxes.PodFile(sb.ID, "hosts"),
			ResolvPath:   m.sandboxes.PodFile(sb.ID, "resolv.conf"),
			ShmPath:      sb.ShmPath,
		},
		Node: m.cfg.Node, Rootfs: rootfs, ImageVolumes: imageVolumes, TargetPID: targetPID, Users: users,
	})
	if err != nil {
		return err
	}
	if spec.Process.ApparmorProfile == apparmor.DefaultProfile && m.cfg.AppArmor != nil {
		if err := m.cfg.AppArmor.EnsureDefault(ctx); err != nil {
			return errdefs.FailedPrecondition("loading the default AppArmor profile %s: %v", apparmor.DefaultProfile, err)
		}
	}
	for _, mnt := range cfg.GetMounts() {
		// kubelet creates its volumes; a missing host path becomes a
		// directory, as containerd and Docker do.
		if hp := mnt.GetHostPath(); hp != "" && mnt.GetImage().GetImage() == "" {
			if _, err := os.Lstat(hp); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(hp, 0o755); err != nil {
					return fmt.Errorf("creating host path %s: %w", hp, err)
				}
			}
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return err
	}

	logPath := ""
	if lp := cfg.GetLogPath(); lp != "" {
		logPath = lp
		if !filepath.IsAbs(lp) {
			if d := sb.Config.GetLogDirectory(); d != "" {
				logPath = filepath.Join(d, lp)
			} else {
				logPath = ""
			}
		}
	}
	c := &Container{
		ID: id, PodID: sb.ID, Name: name, Config: cfg, ImageID: img.ID, CreatedAt: start, LogPath: logPath,
		Bundle: bundle, CgroupPath: spec.Linux.CgroupsPath, User: user,
		Resources:    cfg.GetLinux().GetResources(),
		StopSignal:   stopSignal(cfg, imgCfg),
		ImageVolumes: volumeIDs,
	}

	var st shimapi.ContainerState
	err = m.sandboxes.WithShim(sb.ID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		var err error
		st, err = sc.CreateContainer(ctx, shimapi.CreateContainerArgs{
			ID: id, Bundle: bundle, LogPath: logPath,
			Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), TTY: cfg.GetTty(),
			CgroupPath: c.CgroupPath,
		})
		if err != nil {
			return err
		}
		u.Add(func(ctx context.Context) error {
			return m.sandboxes.WithShim(sb.ID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
				return sc.RemoveContainer(ctx, id)
			})
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating container %s: %w", id, err)
	}
	c.State = st
	if err := writeRecord(dir, c); err != nil {
		return err
	}
	e := newEntry(c)
	m.mu.Lock()
	m.ctrs[id] = e
	m.mu.Unlock()
	klog.InfoS("Container created", "podSandboxID", sb.ID, "containerID", id, "container", cfg.GetMetadata().GetName(),
		"image", img.ID, "duration", time.Since(start))
	return nil
}

// makeContainerDirs makes the container's directory dir (its writable layer) and
// its bundle. Nothing but root reaches dir: the overlay uses upper and
// work with huskd's credentials. The bundle is on the way to the rootfs,
// which libcontainer's init resolves as the container's root: a pod's
// directory (sandbox.MkdirPod), as is the pod's containers/ above it.
func makeContainerDirs(sb *sandbox.Sandbox, dir, bundle string) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700},
		// The overlay's root takes its upper directory's mode: this is the
		// container's "/".
		{filepath.Join(dir, "upper"), 0o755},
		{filepath.Join(dir, "work"), 0o700},
	} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Dir(bundle), bundle} {
		if err := sandbox.MkdirPod(sb, d); err != nil {
			return err
		}
	}
	// The overlay's root covers this directory's mode.
	return os.Mkdir(filepath.Join(bundle, "rootfs"), 0o700)
}

// podMappings are the ID mappings of a pod in its own user namespace.
func podMappings(sb *sandbox.Sandbox) (uids, gids []specs.LinuxIDMapping) {
	if sb.Namespaces[sandbox.NSUser] == "" {
		return nil, nil
	}
	u := sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	conv := func(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
		var out []specs.LinuxIDMapping
		for _, m := range ms {
			out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
		}
		return out
	}
	return conv(u.GetUids()), conv(u.GetGids())
}

// mountRootfs mounts the container's overlay: the image's layers under
// its own upper and work directories in dir. In a pod with its own user
// namespace the layers are stacked through ID-mapped mounts, and the upper
// layer belongs to the host IDs of the container's root, so that the
// container's root owns its image as it would anywhere else.
func mountRootfs(layers []string, dir, bundle, rootfs, userns string, uids, gids []specs.LinuxIDMapping) error {
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if userns == "" {
		return layer.Mount(layers, upper, work, rootfs)
	}
	rootUID, rootGID := hostID(uids, 0), hostID(gids, 0)
	for _, d := range []string{upper, work} {
		if err := os.Chown(d, int(rootUID), int(rootGID)); err != nil {
			return err
		}
	}
	lowersDir := filepath.Join(bundle, "lowers")
	var targets []string
	for i := range layers {
		t := filepath.Join(lowersDir, fmt.Sprint(i))
		if err := os.MkdirAll(t, 0o700); err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if err := layer.IDMap(layers, targets, userns); err != nil {
		return err
	}
	err := layer.Mount(targets, upper, work, rootfs)
	// The overlay holds its layers: the ID-mapped mounts it was built from
	// are not needed any more.
	for _, t := range targets {
		_ = layer.Unmount(t)
	}
	_ = os.RemoveAll(lowersDir)
	return err
}

// hostID is the host ID that id maps to.
func hostID(ms []specs.LinuxIDMapping, id uint32) uint32 {
	for _, m := range ms {
		if id >= m.ContainerID && id < m.ContainerID+m.Size {
			return m.HostID + id - m.ContainerID
		}
	}
	return id
}

// mountImageVolume mounts, for Config.mounts[i] with an image
// (KEP-4639), what its image_sub_path names inside the image (the whole
// image when empty) at <bundle>/image-volumes/<i>, and returns that path
// and the image's ID. The sub path is resolved inside the image only (a
// link to "/" or "/etc", or one climbing "../..", means the image's own,
// as for a container whose root the image is), the entry it resolves to
// must be a directory or a regular file, and what is mounted is the entry
// that resolution opened: the path given to libcontainer is huskd's own,
// with no link of the image's on it.
func (m *Manager) mountImageVolume(id, bundle string, i int, mnt *runtime.Mount, u *undo.Stack) (string, string, error) {
	if err := CheckImageMount(i, mnt); err != nil {
		return "", "", err
	}
	img, err := m.images.Resolve(mnt.GetImage().GetImage())
	if err != nil {
		return "", "", fmt.Errorf("image volume %q: %w", mnt.GetImage().GetImage(), err)
	}
	owner := fmt.Sprintf("%s/volume-%d", id, i)
	layers, err := m.images.Lease(owner, img.ID)
	if err != nil {
		return "", "", err
	}
	u.AddRecord(func(context.Context) error { return m.images.Release(owner) })
	// The volume's root is its top layer's; the mount point's mode is
	// hidden under it. runc opens the source on the host's side where the
	// container's init cannot reach it (a pod in its own user namespace).
	dir := filepath.Join(bundle, "image-volumes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	target := filepath.Join(dir, fmt.Sprint(i))
	sub := mnt.GetImageSubPath()
	err = layer.MountVolume(layers, target+".image", sub, target)
	if spe := (*layer.SubPathError)(nil); errors.As(err, &spe) {
		return "", "", errdefs.InvalidArgument(fmt.Sprintf("config.mounts[%d].image_sub_path", i), "%q %s (image %s)", sub, spe.Reason, img.ID)
	}
	if err != nil {
		return "", "", fmt.Errorf("image volume %q: %w", mnt.GetImage().GetImage(), err)
	}
	u.Add(func(context.Context) error { return layer.Unmount(target) })
	return target, img.ID, nil
}

// imageConfig reads the run configuration of an image.
func (m *Manager) imageConfig(imageID string) (ImageConfig, error) {
	b, err := m.images.ReadBlob(imageID)
	if err != nil {
		return ImageConfig{}, err
	}
	cf, err := v1.ParseConfigFile(strings.NewReader(string(b)))
	if err != nil {
		return ImageConfig{}, fmt.Errorf("image %s config: %w", imageID, err)
	}
	c := cf.Config
	return ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, StopSignal: c.StopSignal}, nil
}

// readUserDB answers from the image's /etc/passwd and /etc/group, scanned
// as questions come; an image without them has no named users.
func readUserDB(layers []string) UserDB {
	return ImageUserDB(layers)
}

// stopSignal is the CRI stop_signal, else the image's STOPSIGNAL, else
// SIGTERM.
func stopSignal(cfg *runtime.ContainerConfig, img ImageConfig) string {
	if s := cfg.GetStopSignal(); s != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(s.String(), "SIGNAL_")
	}
	if img.StopSignal != "" {
		return img.StopSignal
	}
	return "SIGTERM"
}

// Start starts a created container.
func (m *Manager) Start(ctx context.Context, id string) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cur.Load()
	if c.State.Status != shimapi.StatusCreated {
		return errdefs.FailedPrecondition("container %s is %s, not created", c.ID, c.State.Status)
	}
	return m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		st, err := sc.StartContainer(ctx, c.ID)
		e.update(func(x *Container) { report(x, st, 0) })
		if err != nil {
			return fmt.Errorf("starting container %s: %w", c.ID, err)
		}
		klog.InfoS("Container started", "podSandboxID", c.PodID, "containerID", c.ID, "pid", st.PID)
		return nil
	})
}

// Stop sends the stop signal, waits timeout, then kills every process of
// the container. api.proto: idempotent, and no error for an unknown ID.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	e, err := m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cur.Load()
	if e.removed || c.State.Status == shimapi.StatusExited {
		return nil
	}
	sig, err := signalNumber(c.StopSignal)
	if err != nil {
		return err
	}
	err = m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		st, err := sc.StopContainer(ctx, shimapi.StopContainerArgs{ID: c.ID, Signal: sig, Timeout: timeout})
		e.update(func(x *Container) { report(x, st, 0) })
		return err
	})
	if errors.Is(err, errdefs.ErrFailedPrecondition) {
		// The pod is stopped or its shim gone: nothing of it runs unless the
		// shim died; make sure.
		return m.killWithoutShim(e)
	}
	return err
}

// killWithoutShim kills whatever is left in a container's cgroup when its
// shim cannot, and records it exited.
func (m *Manager) killWithoutShim(e *entry) error {
	c := e.cur.Load()
	if err := sandbox.DestroyCgroup(c.CgroupPath, 10*time.Second); err != nil {
		return err
	}
	e.update(func(x *Container) { unknownExit(x, "the pod's shim is gone") })
	return nil
}

// unknownExit records that a container ended where nobody saw it, unless
// its exit is known already.
func unknownExit(c *Container, why string) {
	if c.State.Status == shimapi.StatusExited {
		return
	}
	st := &c.State
	st.Status, st.ExitCode, st.Reason, st.Message = shimapi.StatusExited, 255, "Unknown", why
	if st.FinishedAt.IsZero() {
		st.FinishedAt = time.Now()
	}
}

var statusRank = map[string]int{shimapi.StatusCreated: 1, shimapi.StatusRunning: 2, shimapi.StatusExited: 3}

// report applies what the shim said of a container: next, from snapshot
// seq, or from a reply to a call when seq is 0. A container never goes
// back in its life (created, running, exited): a report that would move
// it back is ignored, and so is a snapshot older than one applied already
// (a pod's last snapshot read back from its file after the monitor's).
// Replies carry no Seq; the shim answers a call after the change it made,
// so a reply is never older than the snapshots that came before it, and
// the order of the statuses is all it is checked against. Only State
// changes: the resources UpdateResources recorded stay.
func report(c *Container, next shimapi.ContainerState, seq uint64) {
	if next.ID != c.ID || statusRank[next.Status] < statusRank[c.State.Status] || seq != 0 && seq < c.seq {
		return
	}
	c.State = next
	c.seq = max(c.seq, seq)
}

// Remove removes a container, killing it first if it runs. api.proto:
// idempotent, and no error for an unknown ID.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, err := m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return nil
	}
	c := e.cur.Load()
	err = m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.RemoveContainer(ctx, c.ID)
	})
	if errors.Is(err, errdefs.ErrFailedPrecondition) || errors.Is(err, errdefs.ErrNotFound) {
		err = m.killWithoutShim(e)
		_ = os.RemoveAll(filepath.Join(m.sandboxes.StateDir(c.PodID), shimapi.RuncRoot, c.ID))
	}
	if err != nil {
		return fmt.Errorf("removing container %s: %w", c.ID, err)
	}
	if err := m.removeFiles(c); err != nil {
		return fmt.Errorf("removing container %s: %w", c.ID, err)
	}
	e.removed = true
	m.mu.Lock()
	delete(m.ctrs, c.ID)
	m.mu.Unlock()
	m.names.Release(c.Name, c.ID)
	klog.InfoS("Container removed", "podSandboxID", c.PodID, "containerID", c.ID)
	return nil
}

// removeFiles unmounts the container's rootfs and image volumes, deletes
// its directories (the record last) and ends its image leases.
func (m *Manager) removeFiles(c *Container) error {
	var errs []error
	vols, _ := filepath.Glob(filepath.Join(c.Bundle, "image-volumes", "*"))
	for _, v := range vols {
		errs = append(errs, layer.Unmount(v))
	}
	errs = append(errs, layer.Unmount(filepath.Join(c.Bundle, "rootfs")))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(c.Bundle); err != nil {
		return err
	}
	if err := os.RemoveAll(m.dir(c.ID)); err != nil {
		return err
	}
	for i := range c.ImageVolumes {
		errs = append(errs, m.images.Release(fmt.Sprintf("%s/volume-%d", c.ID, i)))
	}
	errs = append(errs, m.images.Release(c.ID))
	return errors.Join(errs...)
}

// RemovePod removes every container of a pod (sandbox.Observer).
func (m *Manager) RemovePod(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range m.List() {
		if c.PodID == podID {
			errs = append(errs, m.Remove(ctx, c.ID))
		}
	}
	return errors.Join(errs...)
}

// Snapshot applies what a pod's shim reports (sandbox.Observer).
func (m *Manager) Snapshot(podID string, snap shimapi.Snapshot, shimGone bool) {
	known := map[string]shimapi.ContainerState{}
	for _, st := range validStates(podID, snap.Containers) {
		known[st.ID] = st
	}
	m.mu.RLock()
	var mine []*entry
	for _, e := range m.ctrs {
		if e.cur.Load().PodID == podID {
			mine = append(mine, e)
		}
	}
	m.mu.RUnlock()
	seen := map[string]bool{}
	for _, e := range mine {
		c := e.cur.Load()
		seen[c.ID] = true
		st, ok := known[c.ID]
		if !shimGone && (!ok || st == c.State) {
			// Nothing new: the container keeps its published pointer, which
			// the list caches in cri/ compare.
			continue
		}
		e.update(func(x *Container) {
			if ok {
				report(x, st, snap.Seq)
			}
			if shimGone {
				unknownExit(x, "the pod's shim is gone")
			}
		})
	}
	if !shimGone {
		var orphans []string
		for id := range known {
			if !seen[id] {
				orphans = append(orphans, id)
			}
		}
		m.orphanMu.Lock()
		m.orphans[podID] = orphans
		m.orphanMu.Unlock()
	}
}

// ReopenLog makes the shim reopen the container's log after kubelet
// renamed it.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	c := e.cur.Load()
	if c.State.Status != shimapi.StatusRunning {
		return errdefs.FailedPrecondition("container %s is %s: its log is not reopened", c.ID, c.State.Status)
	}
	return m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.ReopenLog(ctx, c.ID)
	})
}

// UpdateResources applies new resources to a created or running container
// and records them for ContainerStatus.
func (m *Manager) UpdateResources(ctx context.Context, id string, res *runtime.LinuxContainerResources) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cur.Load()
	if c.State.Status == shimapi.StatusExited {
		return errdefs.FailedPrecondition("container %s has exited", c.ID)
	}
	oci, err := Resources(res, m.cfg.Node)
	if err != nil {
		return err
	}
	b, err := json.Marshal(oci)
	if err != nil {
		return err
	}
	err = m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.UpdateContainer(ctx, shimapi.UpdateArgs{ID: c.ID, Resources: b})
	})
	if err != nil {
		return fmt.Errorf("updating container %s: %w", c.ID, err)
	}
	next := e.update(func(x *Container) { x.Resources = mergeResources(x.Resources, res) })
	return writeRecord(m.dir(c.ID), next)
}

// mergeResources is what ContainerStatus reports after an update: the new
// values, keeping the OOM score the update cannot change.
func mergeResources(old, upd *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	r := proto.Clone(upd).(*runtime.LinuxContainerResources)
	if old != nil && r.OomScoreAdj == 0 {
		r.OomScoreAdj = old.OomScoreAdj
	}
	return r
}

// record is a container as written to disk: what it was created with.
// Its state lives with the shim.
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
	b, err := json.Marshal(record{
		Version: recordVersion, ID: c.ID, PodID: c.PodID, Name: c.Name, Config: cfg, ImageID: c.ImageID,
		CreatedAt: c.CreatedAt, LogPath: c.LogPath, Bundle: c.Bundle, CgroupPath: c.CgroupPath, User: c.User,
		Resources: res, StopSignal: c.StopSignal, ImageVolumes: c.ImageVolumes,
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
		StopSignal: r.StopSignal, ImageVolumes: r.ImageVolumes,
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

// Load reads the containers a previous huskd left. Their states arrive
// with the shims' snapshots during the sandbox manager's recovery.
func (m *Manager) Load() error {
	entries, err := os.ReadDir(filepath.Join(m.cfg.Root, "containers"))
	if err != nil {
		return err
	}
	for _, d := range entries {
		if !ids.Valid(d.Name()) {
			klog.ErrorS(nil, "Not a container directory; leaving it alone", "dir", m.dir(d.Name()))
			continue
		}
		c, err := readRecord(m.dir(d.Name()))
		if err == nil {
			err = checkRecord(c, d.Name(), bundleDir(m.sandboxes, c.PodID, c.ID))
		}
		if err != nil {
			klog.ErrorS(err, "Unreadable or invalid container record; leaving it alone", "containerID", d.Name())
			continue
		}
		m.ctrs[c.ID] = newEntry(c)
		m.names.Restore(c.Name, c.ID)
	}
	return nil
}

// Reconcile runs after the sandbox manager's recovery: containers of pods
// that are gone are removed, containers no shim reported are recorded as
// exited, and what a crash left without a record goes.
func (m *Manager) Reconcile(ctx context.Context) {
	for _, c := range m.List() {
		sb, err := m.sandboxes.Get(c.PodID)
		if err != nil {
			klog.InfoS("Removing a container whose pod is gone", "containerID", c.ID, "podSandboxID", c.PodID)
			if err := m.Remove(ctx, c.ID); err != nil {
				klog.ErrorS(err, "Removing a container whose pod is gone", "containerID", c.ID)
			}
			continue
		}
		if path.Dir(c.CgroupPath) != sb.CgroupParent() {
			// Its record says another pod's cgroup parent: nothing of it
			// is acted on.
			klog.ErrorS(nil, "Invalid container record: its cgroup is not under its pod's; leaving it alone",
				"containerID", c.ID, "podSandboxID", c.PodID, "cgroup", c.CgroupPath)
			m.mu.Lock()
			delete(m.ctrs, c.ID)
			m.mu.Unlock()
			m.names.Release(c.Name, c.ID)
			continue
		}
		if c.State.Status == "" {
			e, _ := m.lookup(c.ID)
			e.update(func(x *Container) {
				if x.State.Status == "" {
					x.State = shimapi.ContainerState{ID: x.ID, CreatedAt: x.CreatedAt}
					unknownExit(x, "no shim reported it")
				}
			})
		}
	}
	m.orphanMu.Lock()
	orphans := m.orphans
	m.orphans = map[string][]string{}
	m.orphanMu.Unlock()
	for podID, ids := range orphans {
		for _, id := range ids {
			klog.InfoS("Removing a container created by a crashed huskd", "podSandboxID", podID, "containerID", id)
			_ = m.sandboxes.WithShim(podID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
				return sc.RemoveContainer(ctx, id)
			})
			_ = m.removeFiles(&Container{ID: id, Bundle: bundleDir(m.sandboxes, podID, id)})
		}
	}
	// Writable layers and leases with no record: a crash mid-create.
	dirs, _ := os.ReadDir(filepath.Join(m.cfg.Root, "containers"))
	for _, d := range dirs {
		if _, err := m.lookup(d.Name()); err == nil || !ids.Valid(d.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.dir(d.Name()), "container.json")); err == nil {
			continue // unreadable record: left alone, as Load said
		}
		klog.InfoS("Removing what an interrupted CreateContainer left", "containerID", d.Name())
		_ = os.RemoveAll(m.dir(d.Name()))
		_ = m.images.Release(d.Name())
	}
	bundles, _ := filepath.Glob(filepath.Join(path.Dir(m.sandboxes.StateDir("x")), "*", "containers", "*"))
	for _, b := range bundles {
		if _, err := m.lookup(filepath.Base(b)); err == nil || !ids.Valid(filepath.Base(b)) {
			continue
		}
		_ = m.removeFiles(&Container{ID: filepath.Base(b), Bundle: b})
	}
}
