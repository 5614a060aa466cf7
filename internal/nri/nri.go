// Package nri relays pod and container lifecycle events to NRI plugins
// (github.com/containerd/nri, the Node Resource Interface) and applies the
// changes they ask for to a container's OCI spec before it is created.
// Plugins connect to a unix socket (external) or are started from a
// directory of binaries (pre-installed); both are root's: a plugin may
// change any container, so it is as trusted as huskd itself.
//
// The sandbox and container managers call an *NRI at each step of a
// pod's and a container's life. A nil *NRI is NRI switched off: every
// method does nothing and costs nothing.
package nri

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	rtgen "github.com/opencontainers/runtime-tools/generate"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
)

// Config is the [nri] table of huskd's configuration.
type Config struct {
	// SocketPath is where external plugins connect; its directory is made
	// 0700 and the socket 0600, root's.
	SocketPath string
	// DisableConnections: no socket; only pre-installed plugins run.
	DisableConnections bool
	// PluginPath holds pre-installed plugins (NN-name binaries) started
	// with huskd; PluginConfigPath their configuration files.
	PluginPath, PluginConfigPath string
	// RegistrationTimeout bounds a plugin's registration and first
	// synchronization; RequestTimeout each event sent to a plugin. A
	// plugin that overruns either is disconnected; the call it held goes
	// on without it, or fails if the plugin asked so (its failure policy,
	// fail_request).
	RegistrationTimeout, RequestTimeout time.Duration
}

// StateFunc lists the pods and containers a plugin that connects is told
// of (its Synchronize).
type StateFunc func() ([]*api.PodSandbox, []*api.Container)

// NRI is the runtime side of NRI. A nil *NRI is off.
type NRI struct {
	cfg Config
	a   *adaptation.Adaptation

	mu    sync.Mutex
	state StateFunc
}

// New prepares NRI; plugins come only after Start.
func New(cfg Config, version string) (*NRI, error) {
	nrilog.Set(klogger{})
	// The library keeps its timeouts in package variables: one NRI per
	// process.
	if cfg.RegistrationTimeout > 0 {
		adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	}
	if cfg.RequestTimeout > 0 {
		adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	}
	n := &NRI{cfg: cfg}
	opts := []adaptation.Option{
		adaptation.WithSocketPath(cfg.SocketPath),
		adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath),
	}
	if cfg.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	}
	a, err := adaptation.New("husk", version, n.synchronize, n.update, opts...)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	n.a = a
	return n, nil
}

// Start starts the pre-installed plugins and listens for others. Call it
// once the pods of the last run are recovered: state lists them for each
// plugin that comes.
func (n *NRI) Start(state StateFunc) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	n.state = state
	n.mu.Unlock()
	if err := n.a.Start(); err != nil {
		return fmt.Errorf("nri: %w", err)
	}
	if !n.cfg.DisableConnections {
		// The library makes the socket with the process umask: any plugin
		// may change any container, so only root may connect.
		if err := os.Chmod(n.cfg.SocketPath, 0o600); err != nil {
			n.a.Stop()
			return fmt.Errorf("nri: %w", err)
		}
	}
	klog.InfoS("NRI started", "socket", n.socket(), "pluginPath", n.cfg.PluginPath)
	return nil
}

func (n *NRI) socket() string {
	if n.cfg.DisableConnections {
		return ""
	}
	return n.cfg.SocketPath
}

// Stop disconnects the plugins and closes the socket.
func (n *NRI) Stop() {
	if n == nil {
		return
	}
	n.a.Stop()
}

// synchronize answers a plugin's registration with every pod and
// container.
func (n *NRI) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	var pods []*api.PodSandbox
	var ctrs []*api.Container
	if state != nil {
		pods, ctrs = state()
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	if len(updates) > 0 {
		// Updating running containers' resources from a plugin is not
		// supported yet: the plugin learns nothing is applied.
		klog.InfoS("Ignoring the container updates an NRI plugin asked for at its synchronization", "count", len(updates))
	}
	return nil
}

// update refuses the container updates plugins ask for on their own:
// huskd does not apply them (yet). Every one is returned as failed.
func (n *NRI) update(_ context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	klog.InfoS("Refusing the container updates an NRI plugin asked for", "count", len(updates))
	return updates, nil
}

// BlockSync keeps plugins from finishing their registration until the
// returned func is called. A pod or container creation holds it from
// before its event until the new object is listed, so that a plugin that
// registers meanwhile learns of it either from the event or from its
// synchronization, never neither.
func (n *NRI) BlockSync() (unblock func()) {
	if n == nil {
		return func() {}
	}
	b := n.a.BlockPluginSync()
	return b.Unblock
}

// rejected turns a plugin's error into the gRPC error the CRI call
// returns.
func rejected(what string, err error) error {
	if err == nil {
		return nil
	}
	return errdefs.FailedPrecondition("NRI plugin failed %s: %v", what, err)
}

// RunPodSandbox tells plugins of a pod about to be Ready; an error
// fails the RunPodSandbox.
func (n *NRI) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if n == nil {
		return nil
	}
	return rejected("RunPodSandbox", n.a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod}))
}

// StopPodSandbox tells plugins of a pod whose containers are stopped.
func (n *NRI) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if n == nil {
		return nil
	}
	return rejected("StopPodSandbox", n.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}))
}

// RemovePodSandbox tells plugins of a pod removed.
func (n *NRI) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if n == nil {
		return nil
	}
	return rejected("RemovePodSandbox", n.a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod}))
}

// CreateContainer asks plugins about a container whose OCI spec is
// complete, and applies their adjustment to spec. An error fails the
// CreateContainer; spec may then be half adjusted.
func (n *NRI) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, spec *specs.Spec) error {
	if n == nil {
		return nil
	}
	resp, err := n.a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return rejected("CreateContainer", err)
	}
	if resp.GetAdjust() == nil {
		return nil
	}
	g := rtgen.NewFromSpec(spec)
	if err := nrigen.SpecGenerator(&g).Adjust(resp.GetAdjust()); err != nil {
		return errdefs.FailedPrecondition("applying the NRI plugins' adjustment: %v", err)
	}
	if len(resp.GetUpdate()) > 0 {
		klog.InfoS("Ignoring the updates of other containers an NRI plugin asked for", "containerID", ctr.GetId(), "count", len(resp.GetUpdate()))
	}
	return nil
}

// PostCreateContainer tells plugins the container exists.
func (n *NRI) PostCreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n == nil {
		return
	}
	n.logged("PostCreateContainer", ctr, n.a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: pod, Container: ctr}))
}

// StartContainer tells plugins the container is about to start; an error
// fails the StartContainer.
func (n *NRI) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	if n == nil {
		return nil
	}
	return rejected("StartContainer", n.a.StartContainer(ctx, &api.StartContainerRequest{Pod: pod, Container: ctr}))
}

// PostStartContainer tells plugins the container runs.
func (n *NRI) PostStartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n == nil {
		return
	}
	n.logged("PostStartContainer", ctr, n.a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: pod, Container: ctr}))
}

// StopContainer tells plugins the container has stopped, by
// StopContainer or on its own.
func (n *NRI) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n == nil {
		return
	}
	_, err := n.a.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: ctr})
	n.logged("StopContainer", ctr, err)
}

// RemoveContainer tells plugins the container is gone.
func (n *NRI) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n == nil {
		return
	}
	n.logged("RemoveContainer", ctr, n.a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: ctr}))
}

// logged logs the error of an event that cannot fail its call: the step
// has happened.
func (n *NRI) logged(event string, ctr *api.Container, err error) {
	if err != nil {
		klog.ErrorS(err, "NRI plugin failed an event", "event", event, "podSandboxID", ctr.GetPodSandboxId(), "containerID", ctr.GetId())
	}
}

// klogger sends the library's logs to klog, its chatter at V(2).
type klogger struct{}

func (klogger) Debugf(_ context.Context, f string, a ...any) { klog.V(4).Infof("nri: "+f, a...) }
func (klogger) Infof(_ context.Context, f string, a ...any)  { klog.V(2).Infof("nri: "+f, a...) }
func (klogger) Warnf(_ context.Context, f string, a ...any)  { klog.Warningf("nri: "+f, a...) }
func (klogger) Errorf(_ context.Context, f string, a ...any) { klog.Errorf("nri: "+f, a...) }
