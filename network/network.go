// Package network gives pods their network through CNI (libcni): the
// first network configuration of the configuration directory by name, or,
// when it holds none, a built-in bridge network, so that a node works with
// nothing set up. The directory is watched, and a change is picked up for
// the next pod.
package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/fsnotify/fsnotify"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/tracing"
)

// IfName is the pod's interface, as kubelet's pods have always called it.
const IfName = "eth0"

// Config says where CNI lives on the node and what the built-in network is.
type Config struct {
	ConfDir string
	BinDirs []string
	// CacheDir keeps what each ADD was given and returned, so that a DEL
	// after a restart (or a reboot) repeats it exactly.
	CacheDir string
	// The built-in network: a bridge with host-local IPAM.
	BridgeName  string
	Subnet      string
	IPAMDataDir string
}

// Manager runs CNI for pods. Its methods are safe for concurrent use.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig

	mu      sync.RWMutex
	current *libcni.NetworkConfigList
	source  string // the file the configuration came from, or "built-in"
	notOK   error  // why no pod can get a network now
	podCIDR string
	// builtinSubnets are the built-in network's subnets while it is the
	// current network, "" otherwise.
	builtinSubnets string
	masq           masquerade

	watcher *fsnotify.Watcher
}

// New loads the configuration and starts watching the directory; Close
// stops watching.
func New(cfg Config) (*Manager, error) {
	// The configuration directory is the admin's (/etc/cni/net.d); the
	// cache of the pods' attachments is for root, who runs the plugins.
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{cfg.ConfDir, 0o755}, {cfg.CacheDir, 0o700}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, err
		}
	}
	m := &Manager{cfg: cfg, cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, newPluginExec())}
	m.reload()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(cfg.ConfDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watching %s: %w", cfg.ConfDir, err)
	}
	m.watcher = w
	go m.watch()
	return m, nil
}

// Close stops watching the configuration directory.
func (m *Manager) Close() error { return m.watcher.Close() }

func (m *Manager) watch() {
	for {
		select {
		case _, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			// An editor writes a file in several steps: settle first.
			time.Sleep(100 * time.Millisecond)
			for len(m.watcher.Events) > 0 {
				<-m.watcher.Events
			}
			m.reload()
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			klog.ErrorS(err, "Watching the CNI configuration directory", "dir", m.cfg.ConfDir)
		}
	}
}

// reload picks the first configuration of the directory by name that
// loads, or the built-in network when the directory holds none.
func (m *Manager) reload() {
	list, source, subnets, err := m.load()
	if err == nil {
		err = m.checkPlugins(list)
	}
	m.mu.Lock()
	changed := source != m.source || (err == nil) != (m.notOK == nil)
	m.current, m.source, m.notOK, m.builtinSubnets = list, source, err, subnets
	m.mu.Unlock()
	if err != nil {
		klog.ErrorS(err, "No pod network", "confDir", m.cfg.ConfDir)
	} else if changed {
		klog.InfoS("Pod network configured", "network", list.Name, "source", source)
	}
}

// load returns the network, where it came from, and for the built-in
// network its subnets.
func (m *Manager) load() (*libcni.NetworkConfigList, string, string, error) {
	files, err := libcni.ConfFiles(m.cfg.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, "", "", fmt.Errorf("reading %s: %w", m.cfg.ConfDir, err)
	}
	var errs []error
	for _, f := range files { // sorted by name: the first that loads wins
		list, err := libcni.NetworkConfFromFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		return list, f, "", nil
	}
	if len(errs) > 0 {
		return nil, "", "", errors.Join(errs...)
	}
	m.mu.RLock()
	cidr := m.podCIDR
	m.mu.RUnlock()
	b, err := Builtin(m.cfg, cidr)
	if err != nil {
		return nil, "", "", err
	}
	subnets := m.cfg.Subnet
	if cidr != "" {
		subnets = cidr
	}
	list, err := libcni.NetworkConfFromBytes(b)
	return list, "built-in", subnets, err
}

// checkPlugins says whether every plugin of a list is installed.
func (m *Manager) checkPlugins(list *libcni.NetworkConfigList) error {
	for _, p := range list.Plugins {
		found := false
		for _, d := range m.cfg.BinDirs {
			if fi, err := os.Stat(filepath.Join(d, p.Network.Type)); err == nil && !fi.IsDir() {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("CNI plugin %q of network %q is not in %s", p.Network.Type, list.Name, strings.Join(m.cfg.BinDirs, ", "))
		}
	}
	return nil
}

// Ready says whether a pod can get a network, and if not, why: Status's
// NetworkReady condition.
func (m *Manager) Ready() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.notOK
}

// SetPodCIDR records the node's pod CIDR (kubelet's UpdateRuntimeConfig):
// the built-in network allocates from it.
func (m *Manager) SetPodCIDR(cidr string) {
	m.mu.Lock()
	same := m.podCIDR == cidr
	m.podCIDR = cidr
	m.mu.Unlock()
	if !same {
		m.reload()
	}
}

// Builtin is the conflist of the network a node gets without
// configuration: bridge with host-local IPAM on the pod CIDR (or the
// configured subnet), portmap for hostPorts, bandwidth for the
// kubernetes.io/*-bandwidth annotations. The bridge does not masquerade:
// huskd writes one rule set per bridge instead (see masquerade.go).
// Exported so that benchmarks can give other runtimes the very same
// plugins.
func Builtin(cfg Config, podCIDR string) ([]byte, error) {
	return builtin(cfg, podCIDR, true, true)
}

// builtin is the built-in conflist, with portmap and bandwidth only when
// asked for: a pod without host ports or bandwidth annotations gets a
// list without them, since they would do nothing for it but cost an exec
// each on ADD and on DEL (libcni caches the list ADD ran, and DEL replays
// it).
func builtin(cfg Config, podCIDR string, portmap, bandwidth bool) ([]byte, error) {
	var ranges [][]map[string]string
	var routes []map[string]string
	subnets := cfg.Subnet
	if podCIDR != "" {
		subnets = podCIDR
	}
	for _, s := range strings.Split(subnets, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("built-in network subnet %q: %w", s, err)
		}
		ranges = append(ranges, []map[string]string{{"subnet": p.Masked().String()}})
		dst := "0.0.0.0/0"
		if p.Addr().Is6() {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	plugins := []any{
		map[string]any{
			"type": "bridge", "bridge": cfg.BridgeName, "isGateway": true, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": cfg.IPAMDataDir},
		},
	}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
	}
	if bandwidth {
		plugins = append(plugins, map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	}
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "husk", "plugins": plugins})
}

// Pod is what CNI is told about a pod.
type Pod struct {
	ID, Name, Namespace, UID string
	NetNS                    string // the pinned network namespace; "" once it is gone
	PortMappings             []*runtime.PortMapping
	DNS                      *runtime.DNSConfig
	Annotations              map[string]string
}

func (p Pod) runtimeConf() (*libcni.RuntimeConf, error) {
	rc := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	var pms []map[string]any
	for _, pm := range p.PortMappings {
		if pm.GetHostPort() <= 0 {
			continue
		}
		pms = append(pms, map[string]any{
			"hostPort": pm.GetHostPort(), "containerPort": pm.GetContainerPort(),
			"protocol": strings.ToLower(pm.GetProtocol().String()), "hostIP": pm.GetHostIp(),
		})
	}
	if len(pms) > 0 {
		rc.CapabilityArgs["portMappings"] = pms
	}
	if d := p.DNS; d != nil {
		rc.CapabilityArgs["dns"] = map[string]any{"servers": d.GetServers(), "searches": d.GetSearches(), "options": d.GetOptions()}
	}
	bw, err := bandwidth(p.Annotations)
	if err != nil {
		return nil, err
	}
	if bw != nil {
		rc.CapabilityArgs["bandwidth"] = bw
	}
	return rc, nil
}

// Setup runs CNI ADD for a pod and returns its addresses. On error
// whatever the plugins did is undone (DEL) and the error carries the
// plugin's message.
func (m *Manager) Setup(ctx context.Context, p Pod) ([]string, error) {
	ctx, span := tracing.Step(ctx, "cni.add", tracing.PodSandboxID(p.ID))
	ips, err := m.setup(ctx, p)
	tracing.End(span, err)
	count(metrics.CNIAdd, err)
	return ips, err
}

// count records a CNI operation and whether it failed.
func count(op string, err error) {
	metrics.CNIOperations.WithLabelValues(op).Inc()
	if err != nil {
		metrics.CNIErrors.WithLabelValues(op).Inc()
	}
}

func (m *Manager) setup(ctx context.Context, p Pod) ([]string, error) {
	m.mu.RLock()
	list, notOK, subnets := m.current, m.notOK, m.builtinSubnets
	m.mu.RUnlock()
	if notOK != nil {
		return nil, errdefs.FailedPrecondition("no pod network: %v", notOK)
	}
	rc, err := p.runtimeConf()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if subnets != "" {
		if err := m.masq.ensure(m.cfg.BridgeName, subnets); err != nil {
			return nil, err
		}
		_, ports := rc.CapabilityArgs["portMappings"]
		_, bw := rc.CapabilityArgs["bandwidth"]
		if !ports || !bw {
			if list, err = m.trimmedBuiltin(subnets, ports, bw); err != nil {
				return nil, err
			}
		}
	}
	res, err := m.cni.AddNetworkList(ctx, list, rc)
	if err != nil {
		if derr := m.cni.DelNetworkList(context.WithoutCancel(ctx), list, rc); derr != nil {
			klog.ErrorS(derr, "Undoing a failed CNI ADD", "podSandboxID", p.ID)
		}
		return nil, fmt.Errorf("CNI network %q: %w", list.Name, err)
	}
	var ips []string
	if r, err := types100.NewResultFromResult(res); err == nil {
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.IP.String())
		}
	}
	klog.InfoS("Pod network set up", "podSandboxID", p.ID, "network", list.Name, "ips", ips, "duration", time.Since(start))
	return ips, nil
}

// trimmedBuiltin is the built-in network on subnets without the plugins a
// pod does not need.
func (m *Manager) trimmedBuiltin(subnets string, portmap, bandwidth bool) (*libcni.NetworkConfigList, error) {
	b, err := builtin(m.cfg, subnets, portmap, bandwidth)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// Teardown runs CNI DEL for every network ADD attached the pod to, with
// the configuration and arguments that ADD used (libcni keeps them in its
// cache, which survives restarts and reboots): a changed configuration
// directory cannot leak the pod's IP. NetNS may be "" once the namespace
// is gone; plugins then free what they hold. A pod with nothing attached
// is fine: DEL is idempotent.
func (m *Manager) Teardown(ctx context.Context, p Pod) error {
	ctx, span := tracing.Step(ctx, "cni.del", tracing.PodSandboxID(p.ID))
	err := m.teardown(ctx, p)
	tracing.End(span, err)
	count(metrics.CNIDel, err)
	return err
}

func (m *Manager) teardown(ctx context.Context, p Pod) error {
	atts, err := m.cni.GetCachedAttachments(p.ID)
	if err != nil {
		return fmt.Errorf("the CNI cache of pod %s: %w", p.ID, err)
	}
	if len(atts) == 0 {
		return m.teardownUncached(ctx, p)
	}
	var errs []error
	for _, a := range atts {
		list, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("cached network %q of pod %s: %w", a.Network, p.ID, err))
			continue
		}
		rc := &libcni.RuntimeConf{ContainerID: p.ID, NetNS: p.NetNS, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		if err := m.cni.DelNetworkList(ctx, list, rc); err != nil {
			errs = append(errs, fmt.Errorf("CNI DEL of network %q: %w", list.Name, err))
			continue
		}
		klog.InfoS("Pod network torn down", "podSandboxID", p.ID, "network", list.Name)
	}
	return errors.Join(errs...)
}

// teardownUncached runs DEL with the current configuration for a pod that
// has no cached attachment: its ADD never returned (huskd died during it),
// yet plugins may have allocated an address or written rules. Plugins
// treat a DEL of what they never did as success.
func (m *Manager) teardownUncached(ctx context.Context, p Pod) error {
	m.mu.RLock()
	list, notOK := m.current, m.notOK
	m.mu.RUnlock()
	if notOK != nil {
		return nil // nothing can have been set up with no network
	}
	// A plugin of that ADD may still run, orphaned by the huskd that
	// started it: a DEL before it ends would miss what it then allocates.
	waitForPlugins(ctx, p.ID)
	p.Annotations = nil // bandwidth's DEL needs no limits; bad ones must not block it
	rc, err := p.runtimeConf()
	if err != nil {
		return err
	}
	err = m.cni.DelNetworkList(ctx, list, rc)
	if err != nil && rc.NetNS != "" {
		// A plugin killed half way through ADD leaves state its own DEL
		// trips on (the bridge plugin removes masquerade rules it never
		// wrote, and fails). Without the namespace, plugins only free
		// what they hold on the host: the lease, port rules.
		klog.ErrorS(err, "CNI DEL of an unfinished ADD; retrying without the namespace", "podSandboxID", p.ID, "network", list.Name)
		rc.NetNS = ""
		err = m.cni.DelNetworkList(ctx, list, rc)
	}
	if err != nil {
		return fmt.Errorf("CNI DEL of network %q: %w", list.Name, err)
	}
	klog.InfoS("Pod network torn down without a cached attachment", "podSandboxID", p.ID, "network", list.Name)
	return nil
}

// pluginWait bounds how long a DEL waits for an orphaned plugin.
const pluginWait = 2 * time.Minute

// waitForPlugins waits until no process runs with CNI_CONTAINERID=id in its
// environment: a plugin for the pod, or a program (iptables) it started.
func waitForPlugins(ctx context.Context, id string) {
	needle := []byte("CNI_CONTAINERID=" + id + "\x00")
	deadline := time.Now().Add(pluginWait)
	for pluginRunning(needle) {
		if time.Now().After(deadline) {
			klog.InfoS("A CNI plugin of the pod still runs; deleting anyway", "podSandboxID", id, "waited", pluginWait)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pluginRunning(needle []byte) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, needle) {
			return true
		}
	}
	return false
}
