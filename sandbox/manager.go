// Package sandbox owns pod sandboxes: their names, namespaces, files,
// cgroup, and the per-pod husk-shim that runs the pause. It keeps the
// sandboxes in memory for fast lists and on disk for restarts.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"encoding/json"

	"github.com/google/renameio/v2"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/cgwarm"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/names"
	"github.com/huskrt/husk/internal/nri"
	"github.com/huskrt/husk/internal/tracing"
	"github.com/huskrt/husk/internal/undo"
	"github.com/huskrt/husk/network"
	"github.com/huskrt/husk/shim/shimapi"
)

// Config is what the manager needs to know about the node. Zero values
// are not defaults: huskd's config fills every field.
type Config struct {
	Root  string // persistent: <root>/pods/<id>/ holds the record and pod files
	State string // volatile: <state>/pods/<id>/ holds the shim socket, pins, shm

	ShimPath  string
	RuncPath  string
	PausePath string

	// CgroupDriver names and removes pods' and containers' cgroups.
	CgroupDriver cgroup.Driver
	// CgroupParent is used for pods that name none, in the driver's form
	// (a path, or a slice name); empty: the driver's default.
	CgroupParent string
	ShmSize      int64

	HostResolvConf string
	HostHosts      string

	// CreateTimeout bounds a RunPodSandbox once it has started, whether or
	// not its caller is still waiting.
	CreateTimeout time.Duration
	// StopTimeout bounds how long processes get to die after SIGKILL.
	StopTimeout time.Duration

	// Network gives pods on their own network an interface; nil gives
	// them loopback only.
	Network Network

	// NRI tells NRI plugins of each pod's steps; nil: NRI is off.
	NRI *nri.NRI
}

// Network is CNI, as the sandbox manager uses it (package network).
type Network interface {
	Setup(ctx context.Context, p network.Pod) ([]string, error)
	Teardown(ctx context.Context, p network.Pod) error
}

// netPod is what CNI is told about a sandbox; netns is its pinned
// network namespace, or "" once that is gone.
func netPod(sb *Sandbox, netns string) network.Pod {
	md := sb.Config.GetMetadata()
	return network.Pod{
		ID: sb.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), NetNS: netns,
		PortMappings: sb.Config.GetPortMappings(), DNS: sb.Config.GetDnsConfig(), Annotations: sb.Config.GetAnnotations(),
	}
}

// startNetwork starts CNI ADD for a pod whose network namespace is pinned
// and returns the wait for its outcome, which records the pod's IPs. The
// undo it registers waits for ADD too, so that a pod failing elsewhere
// meanwhile is never torn down under a running plugin.
func (m *Manager) startNetwork(ctx context.Context, sb *Sandbox, u *undo.Stack) (wait func() error) {
	if m.cfg.Network == nil || sb.Namespaces[NSNet] == "" {
		return func() error { return nil }
	}
	pod := netPod(sb, sb.Namespaces[NSNet])
	done := make(chan struct{})
	var ips []string
	var err error
	go func() {
		defer close(done)
		defer metrics.Since(metrics.SandboxOperationDuration.WithLabelValues(metrics.OpNetwork), time.Now())
		ips, err = m.cfg.Network.Setup(ctx, pod)
	}()
	u.Add(func(ctx context.Context) error {
		<-done
		if err != nil {
			return nil // Setup undid its own work
		}
		return m.cfg.Network.Teardown(ctx, pod)
	})
	return func() error {
		<-done
		if err == nil {
			sb.IPs = ips
		}
		return err
	}
}

// teardownNetwork runs CNI DEL for a pod, whether or not its namespace is
// still there.
func (m *Manager) teardownNetwork(ctx context.Context, sb *Sandbox) error {
	if m.cfg.Network == nil || HostNetwork(sb.Config) {
		return nil
	}
	return m.cfg.Network.Teardown(ctx, netPod(sb, m.pinnedNetNS(sb.ID)))
}

// pinnedNetNS is the path of the pod's pinned network namespace, or "" when
// the pin is gone or no longer a namespace (unmounted by hand, or a record
// from before pinning): plugins skip the in-namespace part of DEL for "",
// but fail on a path that is not a namespace.
func (m *Manager) pinnedNetNS(id string) string {
	p := filepath.Join(m.stateDir(id), "ns", NSNet)
	var fs unix.Statfs_t
	if err := unix.Statfs(p, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return ""
	}
	return p
}

// Manager runs pod sandboxes. Its methods are safe for concurrent use;
// calls on different sandboxes do not wait for each other.
type Manager struct {
	cfg         Config
	pauseRootfs string
	oomFloor    int
	// defaultParent is the cgroupfs path of the configured cgroup parent.
	defaultParent string
	names         *names.Registrar

	mu   sync.RWMutex
	pods map[string]*pod
	// creating counts RunPodSandbox calls whose pod is not in pods yet.
	creating int
	// removedLogs is what the shims of removed pods wrote to container
	// logs (see ShimMetrics).
	removedLogs shimapi.LogCounts

	observer Observer
}

// Observer is told what the shims report, and takes part in removing a
// pod. The container manager is the observer.
type Observer interface {
	// Snapshot is the state of a pod's processes as its shim reported it:
	// after every change, at recovery, and after the pod stopped. With
	// shimGone the shim is dead and the snapshot is the last it wrote;
	// containers not recorded as exited will never be.
	Snapshot(podID string, snap shimapi.Snapshot, shimGone bool)
	// RemovePod removes every container of the pod, for a
	// RemovePodSandbox that comes before the containers' removal.
	RemovePod(ctx context.Context, podID string) error
}

type nopObserver struct{}

func (nopObserver) Snapshot(string, shimapi.Snapshot, bool) {}
func (nopObserver) RemovePod(context.Context, string) error { return nil }

// SetObserver sets who learns of the shims' snapshots. Call it before
// Recover.
func (m *Manager) SetObserver(o Observer) { m.observer = o }

// pod is a sandbox's in-memory handle.
type pod struct {
	id string
	// mu is held for writing by lifecycle calls (Stop, Remove) on this pod
	// and for reading by container calls (WithShim), and guards shim and
	// removed.
	mu      sync.RWMutex
	shim    *shimapi.Client
	removed bool
	// unanswered: after a restart the shim did not answer, and is being
	// asked again (see reconnect); calls that need it are Unavailable.
	unanswered bool
	// cancelMonitor stops the goroutine that waits for the pause to exit.
	cancelMonitor context.CancelFunc
	// nriStopped: NRI plugins heard of the pod's stop, which they hear
	// once however often StopPodSandbox is called.
	nriStopped bool

	// logs is the latest of the shim's log counts huskd heard (see
	// ShimMetrics); frozen once the shim has exited.
	logsMu sync.Mutex
	logs   shimapi.LogCounts

	// statusMu orders updates of cur and their writes to disk.
	statusMu sync.Mutex
	cur      atomic.Pointer[Sandbox]
	rootDir  string
}

// update publishes a copy of the current status changed by fn and writes
// it to disk; on a write error nothing is published.
func (p *pod) update(fn func(*Sandbox)) error {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	next := p.cur.Load().clone()
	fn(next)
	if err := writeRecord(p.rootDir, next); err != nil {
		return err
	}
	p.cur.Store(next)
	return nil
}

// New prepares the directories and the pause rootfs. It does not look at
// existing pods: Recover does.
func New(cfg Config) (*Manager, error) {
	// These modes, and why, are in cmd/huskd's dirs.go (which also sets
	// them on directories that exist); the pods' own are in dirs.go.
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(cfg.Root, "pods"), 0o700}, {filepath.Join(cfg.State, "pods"), 0o711}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, err
		}
	}
	m := &Manager{cfg: cfg, names: names.New("pod sandbox"), pods: map[string]*pod{}, observer: nopObserver{}}
	if m.cfg.CgroupDriver == "" {
		m.cfg.CgroupDriver = cgroup.Cgroupfs
	}
	if err := m.cfg.CgroupDriver.Check(); err != nil {
		return nil, err
	}
	if m.cfg.CgroupParent == "" {
		m.cfg.CgroupParent = m.cfg.CgroupDriver.DefaultParent()
	}
	var err error
	if m.defaultParent, err = m.cfg.CgroupDriver.Parent(m.cfg.CgroupParent); err != nil {
		return nil, fmt.Errorf("cgroup_parent %q: %w", m.cfg.CgroupParent, err)
	}
	if m.pauseRootfs, err = layOutPauseRootfs(filepath.Join(cfg.Root, "pause"), cfg.PausePath); err != nil {
		return nil, fmt.Errorf("laying out the pause rootfs: %w", err)
	}
	if m.oomFloor, err = ownOOMScoreAdj(); err != nil {
		return nil, err
	}
	return m, nil
}

// layOutPauseRootfs makes the read-only rootfs every pause runs from: the
// pause binary and the mount points it needs. No image is pulled for it.
func layOutPauseRootfs(dir, pauseBinary string) (string, error) {
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{rootfs, filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "dev"), filepath.Join(rootfs, "sys")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	want, err := os.ReadFile(pauseBinary)
	if err != nil {
		return "", fmt.Errorf("reading the pause binary: %w", err)
	}
	dst := filepath.Join(rootfs, PauseBinary)
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, want) {
		return rootfs, nil
	}
	// Replaced atomically: running pauses keep the old inode.
	if err := renameio.WriteFile(dst, want, 0o755, renameio.WithStaticPermissions(0o755)); err != nil {
		return "", err
	}
	return rootfs, nil
}

func ownOOMScoreAdj() (int, error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (m *Manager) rootDir(id string) string  { return filepath.Join(m.cfg.Root, "pods", id) }
func (m *Manager) stateDir(id string) string { return filepath.Join(m.cfg.State, "pods", id) }

// StateDir is the pod's volatile directory (the shim's): container bundles
// live under it.
func (m *Manager) StateDir(id string) string { return m.stateDir(id) }

// StateDirs are the pods' state directories on disk, of the pods known
// and of any that are not: what the container manager's Reconcile looks
// through for bundles a crash left without a record.
func (m *Manager) StateDirs() []string {
	entries, _ := os.ReadDir(filepath.Join(m.cfg.State, "pods"))
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, m.stateDir(e.Name()))
		}
	}
	return out
}

// PodFile is the path of one of the pod's files ("hostname", "hosts",
// "resolv.conf") that containers bind-mount.
func (m *Manager) PodFile(id, name string) string { return filepath.Join(m.rootDir(id), name) }

// ContainerCgroup is the cgroupfs path of the pod's container id: beside
// the pause's, made by the driver that made the pod's (a pod keeps its
// driver for life, whatever huskd is later configured with).
func (sb *Sandbox) ContainerCgroup(id string) string { return cgroup.Sibling(sb.CgroupPath, id) }

// CgroupDriver is the driver new pods' cgroups are made with.
func (m *Manager) CgroupDriver() cgroup.Driver { return m.cfg.CgroupDriver }

// NetNS is the pinned network namespace of a Ready pod, or "" when the pod
// uses the host's network: where port-forward dials.
func (m *Manager) NetNS(id string) (string, error) {
	p, err := m.lookup(id)
	if err != nil {
		return "", err
	}
	sb := p.cur.Load()
	if sb.State != StateReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready (%s)", sb.ID, sb.Reason)
	}
	if HostNetwork(sb.Config) {
		return "", nil
	}
	if sb.Namespaces[NSNet] == "" {
		return "", fmt.Errorf("pod sandbox %s has no pinned network namespace", sb.ID)
	}
	return sb.Namespaces[NSNet], nil
}

// WithShim runs fn with the shim of a Ready pod, while no Stop or Remove
// of the pod can run. A pod that is not Ready gives FailedPrecondition.
func (m *Manager) WithShim(id string, fn func(sb *Sandbox, c *shimapi.Client) error) error {
	p, err := m.lookup(id)
	if err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	sb := p.cur.Load()
	if err := p.answersLocked(); err != nil {
		return err
	}
	if p.removed || sb.State != StateReady || p.shim == nil {
		return errdefs.FailedPrecondition("pod sandbox %s is not ready (%s)", sb.ID, sb.Reason)
	}
	return fn(sb, p.shim)
}

// ShimAnswers fails as Unavailable while the pod's shim has not answered
// since huskd's restart (see reconnect): calls that talk to the shim's IO
// socket directly (exec, attach) check it rather than wait out their
// deadline on a stopped shim.
func (m *Manager) ShimAnswers(id string) error {
	p, err := m.lookup(id)
	if err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.answersLocked()
}

// answersLocked: p.mu held.
func (p *pod) answersLocked() error {
	if !p.removed && p.unanswered && p.cur.Load().State == StateReady {
		return errdefs.Unavailable("the shim of pod sandbox %s does not answer (stopped or starved of CPU?); huskd keeps asking it", p.id)
	}
	return nil
}

// PodName is the name that makes a pod unique on the node.
func PodName(md *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// Run creates and starts a sandbox for a validated config and returns its
// ID. A retry of a call that is still running gets that call's sandbox
// (see names). Once started, the work is not abandoned when ctx is
// cancelled: the result is kept for the caller's retry.
func (m *Manager) Run(ctx context.Context, cfg *runtime.PodSandboxConfig, handler string) (string, error) {
	name := PodName(cfg.GetMetadata())
	id := ids.New()
	got, err := m.names.Create(ctx, name, id, func() error {
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CreateTimeout)
		defer cancel()
		m.mu.Lock()
		m.creating++
		m.mu.Unlock()
		err := m.create(work, id, name, cfg, handler)
		m.mu.Lock()
		m.creating--
		m.dropDefaultParentLocked()
		m.mu.Unlock()
		return err
	})
	if err == nil && got != id {
		klog.InfoS("RunPodSandbox answered with the sandbox of an earlier identical call", "podSandboxID", got, "pod", name)
	}
	return got, err
}

func (m *Manager) create(ctx context.Context, id, name string, cfg *runtime.PodSandboxConfig, handler string) (retErr error) {
	start := time.Now()
	defer metrics.Since(metrics.SandboxOperationDuration.WithLabelValues(metrics.OpCreate), start)
	// Ended last: the rollback is part of a failed create.
	ctx, span := tracing.Step(ctx, "sandbox.create", tracing.PodSandboxID(id), attribute.String("pod", name))
	defer func() { tracing.End(span, retErr) }()
	// A pod that names no cgroup_parent gets a cgroup of its own in the
	// default parent, as kubelet gives each pod one, to hold its limits.
	podCgroup := m.cfg.CgroupDriver.PodCgroup(m.defaultParent, id)
	parent := podCgroup
	if p := cfg.GetLinux().GetCgroupParent(); p != "" {
		var err error
		if parent, err = m.cfg.CgroupDriver.Parent(p); err != nil {
			return errdefs.InvalidArgument("linux.cgroup_parent", "%q %v", p, err)
		}
		podCgroup = ""
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	sb := &Sandbox{
		ID:             id,
		Name:           name,
		State:          StateCreating,
		CreatedAt:      start,
		Config:         cfg,
		RuntimeHandler: handler,
		CgroupPath:     m.cfg.CgroupDriver.Child(parent, id),
		PodCgroup:      podCgroup,
		PidMode:        nsOpts.GetPid(),
	}
	var u undo.Stack
	defer func() {
		if retErr == nil {
			return
		}
		if uerr := u.Run(ctx, "RunPodSandbox", "podSandboxID", id); uerr != nil {
			retErr = m.keepFailed(sb, retErr, uerr)
		}
	}()

	// 1. The record comes first, so that recovery after a crash in any
	// later step knows what to tear down.
	rootDir, stateDir := m.rootDir(id), m.stateDir(id)
	if err := os.Mkdir(rootDir, 0o700); err != nil {
		return err
	}
	u.AddRecord(func(context.Context) error { return os.RemoveAll(rootDir) })
	if err := writeRecord(rootDir, sb); err != nil {
		return err
	}
	if err := MkdirPod(sb, stateDir); err != nil {
		return err
	}
	faults.Point("RunPodSandbox/after-record")
	// Kept with the record: the shim's pid file, the pins and the
	// snapshot are what a later removal kills and unmounts by.
	u.AddRecord(func(context.Context) error { return os.RemoveAll(stateDir) })
	// The pod's own cgroup, limited before anything runs in it; undone
	// after the pause and containers in it are stopped.
	if sb.PodCgroup != "" {
		if err := makePodCgroup(sb); err != nil {
			if derr := cgroup.Destroy(sb.PodCgroup, m.cfg.StopTimeout); derr != nil {
				klog.ErrorS(derr, "Removing the cgroup of a pod that failed", "podSandboxID", id)
			}
			return err
		}
		u.Add(func(context.Context) error { return cgroup.Destroy(sb.PodCgroup, m.cfg.StopTimeout) })
	}
	// The shim starts now and waits for go (step 5), so that its exec and
	// start-up overlap steps 2 to 4.
	shim, err := m.launchShim(id, stateDir)
	if err != nil {
		return err
	}
	u.Add(func(context.Context) error { shim.abandon(); return nil })
	faults.Point("RunPodSandbox/after-shim-launch")

	// 2. Namespaces, pinned before the pause exists (in a pod with its own
	// user namespace, after: the pause creates them inside it).
	plan := podNamespaces(nsOpts)
	hostNet := HostNetwork(cfg)
	var pinned map[string]string
	if plan.PinFirst {
		var err error
		if pinned, err = pinNamespaces(filepath.Join(stateDir, "ns"), plan.Own, cfg.GetHostname()); err != nil {
			return err
		}
		u.Add(func(context.Context) error { return unpinNamespaces(pinned) })
	}
	sb.Namespaces = pinned

	// 3. The pod's files and /dev/shm.
	if err := writePodFiles(rootDir, cfg, hostNet, m.cfg.HostResolvConf, m.cfg.HostHosts); err != nil {
		return err
	}
	if nsOpts.GetIpc() != runtime.NamespaceMode_NODE {
		shm := filepath.Join(stateDir, "shm")
		if err := mountShm(shm, m.cfg.ShmSize); err != nil {
			return err
		}
		u.Add(func(context.Context) error { return unmountAndRemove(shm) })
		sb.ShmPath = shm
	}
	faults.Point("RunPodSandbox/after-pins")

	// 4. The network, while the shim starts the pause: ADD needs only the
	// pinned namespace and the pause needs no network, so they overlap.
	// The pause will be placed in its cgroup: start the kernel's wait
	// for that now (see cgwarm).
	cgwarm.Warm()
	networkUp := func() error { return nil }
	if plan.PinFirst {
		networkUp = m.startNetwork(ctx, sb, &u)
	}

	// 5. The shim, which starts the pause.
	spec := pauseSpec(pauseSpecInput{
		Config: cfg, Rootfs: m.pauseRootfs, CgroupPath: sb.CgroupPath,
		Pinned: pinned, NewPID: plan.NewPID, OOMScoreAdjFloor: m.oomFloor,
		UserNS: plan.UserNS, Own: plan.Own,
	})
	if err := writeJSON(filepath.Join(stateDir, shimapi.PauseSpecName), spec); err != nil {
		return err
	}
	_, shimSpan := tracing.Step(ctx, "shim.start")
	shimPID, pausePID, err := shim.ready(ctx)
	tracing.End(shimSpan, err)
	if err != nil {
		// The shim undoes its own work when it reports a failure, but not
		// when it was killed: make sure of the cgroup.
		if cerr := cgroup.Destroy(sb.CgroupPath, m.cfg.StopTimeout); cerr != nil {
			klog.ErrorS(cerr, "Removing the cgroup of a failed pause", "podSandboxID", id)
		}
		return err
	}
	u.Add(func(ctx context.Context) error { return m.forceStop(ctx, sb, shimPID) })
	faults.Point("RunPodSandbox/after-pause")
	if !plan.PinFirst {
		kinds := append([]string{NSUser}, plan.Own...)
		pinned, err := pinFromProcess(filepath.Join(stateDir, "ns"), pausePID, kinds)
		if err != nil {
			return err
		}
		u.Add(func(context.Context) error { return unpinNamespaces(pinned) })
		sb.Namespaces = pinned
		networkUp = m.startNetwork(ctx, sb, &u)
	}
	if err := networkUp(); err != nil {
		return err
	}
	faults.Point("RunPodSandbox/after-network")
	client, err := dialShim(ctx, stateDir)
	if err != nil {
		return fmt.Errorf("connecting to the shim: %w", err)
	}
	u.Add(func(context.Context) error { return client.Close() })

	// 6. NRI plugins, which may refuse the pod. They see it whole (its
	// namespaces, addresses, pause) before anyone can list it, and a plugin
	// that registers meanwhile waits until it is listed (BlockSync). Every
	// plugin hears of a pod rolled back, whichever refused it.
	sb.ShimPID, sb.PausePID = shimPID, pausePID
	unblock := m.cfg.NRI.BlockSync()
	defer unblock()
	u.Add(func(ctx context.Context) error {
		if m.cfg.NRI != nil {
			nsb := sb.NRI()
			_ = m.cfg.NRI.StopPodSandbox(ctx, nsb)
			_ = m.cfg.NRI.RemovePodSandbox(ctx, nsb)
		}
		return nil
	})
	if err := m.cfg.NRI.RunPodSandbox(ctx, sb.NRI()); err != nil {
		return err
	}

	// 7. Ready, on disk first.
	sb.State = StateReady
	if err := writeRecord(rootDir, sb); err != nil {
		return err
	}
	faults.Point("RunPodSandbox/after-ready")
	p := &pod{id: id, shim: client, rootDir: rootDir}
	p.cur.Store(sb)
	m.mu.Lock()
	m.pods[id] = p
	m.mu.Unlock()
	unblock()
	m.monitor(p, client)
	klog.InfoS("Pod sandbox ready", "podSandboxID", id, "pod", name, "pausePid", pausePID,
		"shimPid", shimPID, "duration", time.Since(start))
	return nil
}

// keepFailed keeps, as a NotReady pod, a sandbox whose creation failed
// with err and whose rollback failed with undoErr: its record is all that
// knows what is left (a lease whose CNI DEL failed, a process, a mount).
// kubelet sees it in ListPodSandbox and removes it; RemovePodSandbox
// finishes the job as for any pod that was never stopped (forceStop, CNI
// DEL, the files). The name is released all the same, so that kubelet's
// retry can make a new sandbox meanwhile. It returns the call's error.
func (m *Manager) keepFailed(sb *Sandbox, err, undoErr error) error {
	kept := sb.clone()
	kept.State, kept.Stopped, kept.NetworkDown = StateNotReady, false, false
	kept.Reason = "RunPodSandbox failed and so did its rollback: " + undoErr.Error()
	if werr := writeRecord(m.rootDir(sb.ID), kept); werr != nil {
		klog.ErrorS(werr, "Recording a sandbox whose rollback failed", "podSandboxID", sb.ID)
	}
	p := &pod{id: sb.ID, rootDir: m.rootDir(sb.ID)}
	p.cur.Store(kept)
	m.mu.Lock()
	m.pods[sb.ID] = p
	m.mu.Unlock()
	klog.InfoS("Keeping a sandbox whose rollback failed, NotReady, for RemovePodSandbox", "podSandboxID", sb.ID, "pod", sb.Name)
	return fmt.Errorf("%w (its rollback failed too: pod sandbox %s is kept NotReady until RemovePodSandbox: %v)", err, sb.ID, undoErr)
}

// forceStop kills a pod's processes without its shim's help: the shim
// (if pid is still it), and everything in the cgroups of the pause and of
// the containers the shim last wrote down.
func (m *Manager) forceStop(_ context.Context, sb *Sandbox, shimPID int) error {
	if shimPID == 0 {
		shimPID = shimPIDFromFile(m.stateDir(sb.ID))
	}
	if err := killShim(shimPID, sb.ID, m.cfg.StopTimeout); err != nil {
		klog.ErrorS(err, "Killing shim", "podSandboxID", sb.ID, "shimPid", shimPID)
	}
	var errs []error
	if sb.CgroupPath != "" {
		for _, c := range m.lastSnapshot(sb.ID).Containers {
			errs = append(errs, cgroup.Destroy(sb.ContainerCgroup(c.ID), m.cfg.StopTimeout))
		}
		errs = append(errs, cgroup.Destroy(sb.CgroupPath, m.cfg.StopTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(m.stateDir(sb.ID), shimapi.RuncRoot))
}

// monitor follows the shim's snapshots: it hands them to the observer and
// marks the sandbox NotReady when the pause exits or the shim dies.
func (m *Manager) monitor(p *pod, c *shimapi.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancelMonitor = cancel
	go func() {
		var seq uint64
		for {
			snap, err := c.Wait(ctx, seq)
			if ctx.Err() != nil {
				return // stopping on purpose
			}
			if err != nil {
				m.shimGone(p, "shim exited unexpectedly")
				return
			}
			seq = snap.Seq
			p.noteLogs(snap.Logs)
			m.observer.Snapshot(p.id, snap, false)
			if !snap.Pause.Running {
				m.notReady(p, fmt.Sprintf("pause exited with code %d", snap.Pause.ExitCode))
			}
		}
	}()
}

// shimGone records that a pod's shim died: the sandbox is NotReady, and
// its containers are what the shim last wrote down.
func (m *Manager) shimGone(p *pod, reason string) {
	m.notReady(p, reason)
	snap := m.lastSnapshot(p.id)
	p.noteLogs(snap.Logs)
	m.observer.Snapshot(p.id, snap, true)
}

// lastSnapshot is the snapshot a shim left in the pod's state directory.
func (m *Manager) lastSnapshot(id string) shimapi.Snapshot {
	var snap shimapi.Snapshot
	b, err := os.ReadFile(filepath.Join(m.stateDir(id), shimapi.ContainersFile))
	if err == nil {
		_ = json.Unmarshal(b, &snap)
	}
	return validContainers(id, snap)
}

func (m *Manager) notReady(p *pod, reason string) {
	if p.cur.Load().State != StateReady {
		return
	}
	klog.InfoS("Pod sandbox is no longer ready", "podSandboxID", p.id, "reason", reason)
	if err := p.update(func(s *Sandbox) {
		if s.State == StateReady {
			s.State, s.Reason = StateNotReady, reason
		}
	}); err != nil {
		klog.ErrorS(err, "Recording that the sandbox is not ready", "podSandboxID", p.id)
	}
}

// lookup finds a pod by ID or by a prefix of exactly one ID.
func (m *Manager) lookup(idOrPrefix string) (*pod, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return ids.Find(m.pods, idOrPrefix, "pod sandbox", "pod_sandbox_id")
}

// Get returns the status of the sandbox with the given ID or unique prefix.
func (m *Manager) Get(idOrPrefix string) (*Sandbox, error) {
	p, err := m.lookup(idOrPrefix)
	if err != nil {
		return nil, err
	}
	return p.cur.Load(), nil
}

// List returns every visible sandbox, oldest first.
func (m *Manager) List() []*Sandbox {
	m.mu.RLock()
	out := make([]*Sandbox, 0, len(m.pods))
	for _, p := range m.pods {
		out = append(out, p.cur.Load())
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Stop stops every process of the sandbox and releases its /dev/shm. An
// unknown ID is success: api.proto makes StopPodSandbox idempotent.
func (m *Manager) Stop(ctx context.Context, idOrPrefix string) error {
	defer metrics.Since(metrics.SandboxOperationDuration.WithLabelValues(metrics.OpStop), time.Now())
	return m.withPod(idOrPrefix, func(p *pod) error { return m.stopLocked(ctx, p) })
}

// withPod runs fn with the pod's lifecycle lock held. An unknown or
// already removed pod is success without calling fn: stop and remove are
// idempotent.
func (m *Manager) withPod(idOrPrefix string, fn func(*pod) error) error {
	p, err := m.lookup(idOrPrefix)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return nil
	}
	return fn(p)
}

// stopLocked stops the pod; p.mu must be held.
func (m *Manager) stopLocked(ctx context.Context, p *pod) error {
	cur := p.cur.Load()
	if cur.Stopped {
		return nil
	}
	if p.cancelMonitor != nil {
		p.cancelMonitor()
		p.cancelMonitor = nil
	}
	stopped := false
	if p.shim != nil {
		snap, err := p.shim.Stop(ctx, shimapi.StopArgs{Timeout: m.cfg.StopTimeout})
		faults.Point("StopPodSandbox/after-shim-stop")
		p.shim.Close()
		p.shim = nil
		if err == nil {
			stopped = true
			p.noteLogs(snap.Logs)
			m.observer.Snapshot(cur.ID, snap, true)
			if werr := waitShimExit(cur.ShimPID, cur.ID, m.cfg.StopTimeout); werr != nil {
				klog.ErrorS(werr, "Waiting for the shim to exit", "podSandboxID", cur.ID)
			}
		} else {
			klog.ErrorS(err, "Stopping pod through its shim; killing it instead", "podSandboxID", cur.ID)
		}
	}
	if !stopped {
		if err := m.forceStop(ctx, cur, cur.ShimPID); err != nil {
			return fmt.Errorf("stopping pod sandbox %s: %w", cur.ID, err)
		}
		snap := m.lastSnapshot(cur.ID)
		p.noteLogs(snap.Logs)
		m.observer.Snapshot(cur.ID, snap, true)
	}
	// Its containers are stopped, its network and namespaces still there
	// (the NRI contract): plugins release what they gave the pod.
	if !p.nriStopped {
		p.nriStopped = true
		if err := m.cfg.NRI.StopPodSandbox(ctx, p.cur.Load().NRI()); err != nil {
			klog.ErrorS(err, "NRI plugin failed the pod's stop", "podSandboxID", cur.ID)
		}
	}
	if !cur.NetworkDown {
		if err := m.teardownNetwork(ctx, cur); err != nil {
			return fmt.Errorf("stopping pod sandbox %s: %w", cur.ID, err)
		}
		faults.Point("StopPodSandbox/after-network")
		if err := p.update(func(s *Sandbox) { s.NetworkDown = true }); err != nil {
			return err
		}
	}
	if cur.ShmPath != "" {
		if err := unmountAndRemove(cur.ShmPath); err != nil {
			return err
		}
	}
	faults.Point("StopPodSandbox/after-shm")
	klog.InfoS("Pod sandbox stopped", "podSandboxID", cur.ID)
	return p.update(func(s *Sandbox) {
		if s.State == StateReady || s.Reason == "" {
			s.Reason = "stopped"
		}
		s.State, s.Stopped = StateNotReady, true
	})
}

// Remove stops the sandbox if needed and removes everything it had. An
// unknown ID is success: api.proto makes RemovePodSandbox idempotent.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	defer metrics.Since(metrics.SandboxOperationDuration.WithLabelValues(metrics.OpRemove), time.Now())
	if p, err := m.lookup(idOrPrefix); err == nil {
		// Containers first, through the shim while it still runs (they take
		// the pod's read lock).
		if err := m.observer.RemovePod(ctx, p.id); err != nil {
			return fmt.Errorf("removing the containers of pod sandbox %s: %w", p.id, err)
		}
		faults.Point("RemovePodSandbox/after-containers")
	}
	return m.withPod(idOrPrefix, func(p *pod) error {
		if err := m.stopLocked(ctx, p); err != nil {
			return err
		}
		faults.Point("RemovePodSandbox/after-stop")
		cur := p.cur.Load()
		if cur.PodCgroup != "" {
			if err := cgroup.Destroy(cur.PodCgroup, m.cfg.StopTimeout); err != nil {
				return fmt.Errorf("removing pod sandbox %s: %w", cur.ID, err)
			}
		}
		if err := m.removeFiles(cur); err != nil {
			return fmt.Errorf("removing pod sandbox %s: %w", cur.ID, err)
		}
		p.removed = true
		logs := p.loggedCounts()
		m.mu.Lock()
		m.removedLogs.Lines += logs.Lines
		m.removedLogs.Bytes += logs.Bytes
		delete(m.pods, cur.ID)
		m.dropDefaultParentLocked()
		m.mu.Unlock()
		m.names.Release(cur.Name, cur.ID)
		if err := m.cfg.NRI.RemovePodSandbox(ctx, cur.NRI()); err != nil {
			klog.ErrorS(err, "NRI plugin failed the pod's removal", "podSandboxID", cur.ID)
		}
		klog.InfoS("Pod sandbox removed", "podSandboxID", cur.ID)
		return nil
	})
}

// dropDefaultParentLocked removes the default cgroup parent once no pod is
// left or being made: huskd made it (libcontainer creates a pod's cgroup
// with its parents) for the pods that named no parent of their own, and a
// node whose pods are all gone must be as clean as before. Holding mu keeps
// a RunPodSandbox from starting meanwhile; a parent that still has
// children (another program's) stays.
func (m *Manager) dropDefaultParentLocked() {
	if len(m.pods) > 0 || m.creating > 0 {
		return
	}
	if err := cgroup.RemoveEmpty(m.defaultParent); err != nil {
		klog.V(2).InfoS("Keeping the default cgroup parent", "cgroup", m.defaultParent, "reason", err.Error())
	}
}

// removeFiles unpins the namespaces and deletes the pod's directories, the
// record last.
func (m *Manager) removeFiles(sb *Sandbox) error {
	stateDir := m.stateDir(sb.ID)
	pins := map[string]string{}
	for k, v := range sb.Namespaces {
		pins[k] = v
	}
	// A crash can leave pins the record never learned of.
	for _, k := range []string{NSNet, NSIPC, NSUTS, NSUser} {
		pins["found-"+k] = filepath.Join(stateDir, "ns", k)
	}
	if err := unpinNamespaces(pins); err != nil {
		return err
	}
	faults.Point("RemovePodSandbox/after-unpin")
	if err := unmountAndRemove(filepath.Join(stateDir, "shm")); err != nil {
		return err
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return err
	}
	faults.Point("RemovePodSandbox/after-state-dir")
	return os.RemoveAll(m.rootDir(sb.ID))
}

func writeRecord(dir string, sb *Sandbox) error {
	b, err := sb.marshal()
	if err != nil {
		return err
	}
	return renameio.WriteFile(filepath.Join(dir, recordFile), b, 0o600)
}
