// huskd is the husk CRI daemon: kubelet, crictl and critest talk to it on
// one unix socket. It starts a husk-shim per pod and can be restarted at
// any time without disturbing them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	"k8s.io/utils/cpuset"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/container/apparmor"
	"github.com/huskrt/husk/cri"
	"github.com/huskrt/husk/image"
	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/nri"
	"github.com/huskrt/husk/internal/tracing"
	"github.com/huskrt/husk/network"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/stream"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	fs := flag.NewFlagSet("huskd", flag.ExitOnError)
	klog.InitFlags(fs)
	configPath := fs.String("config", DefaultConfigPath, "configuration file (TOML); absent means built-in defaults")
	root := fs.String("root", "", "persistent data directory (overrides the config's root)")
	state := fs.String("state", "", "volatile state directory (overrides the config's state)")
	listen := fs.String("listen", "", "CRI socket path (overrides the config's listen)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })

	if *showVersion {
		fmt.Println("huskd", version)
		if faults.Enabled {
			// The integration tests look for this line: only such a
			// build can be crashed at a named point.
			fmt.Println("fault points: compiled in ($" + faults.EnvVar + ")")
		}
		return
	}
	cfg, err := loadConfig(*configPath, explicit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "huskd:", err)
		os.Exit(2)
	}
	if *root != "" {
		cfg.Root = *root
	}
	if *state != "" {
		cfg.State = *state
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *printConfig {
		// Print before validate: a config is worth seeing even when its
		// binaries are not installed yet.
		fmt.Print(cfg.toml())
		return
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "huskd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		klog.ErrorS(err, "huskd failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(ctx context.Context, cfg Config) error {
	// First, so that an address huskd cannot serve stops it before it has
	// touched the node.
	var metricsL net.Listener
	if cfg.Metrics.Address != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			return fmt.Errorf("metrics.address: %w", err)
		}
		defer l.Close()
		metricsL = l
	}
	if err := makeDirs(cfg.Root, cfg.State); err != nil {
		return err
	}
	// Deferred first, so run last: the spans of the calls that were in
	// flight at the stop are flushed too.
	endpoint, shutdownTracing, err := tracing.Setup(ctx, tracing.Config{
		Endpoint: cfg.Tracing.Endpoint, SamplingRatio: cfg.Tracing.SamplingRatio, Version: version,
	})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			klog.ErrorS(err, "Flushing trace spans", "endpoint", endpoint)
		}
	}()
	if endpoint != "" {
		klog.InfoS("Exporting trace spans", "endpoint", endpoint, "samplingRatio", cfg.Tracing.SamplingRatio)
	} else {
		klog.V(2).InfoS("Tracing off: neither tracing.endpoint nor OTEL_EXPORTER_OTLP_ENDPOINT is set")
	}
	unlock, err := lockState(cfg.State)
	if err != nil {
		return err
	}
	defer unlock()

	nets, err := network.New(network.Config{
		ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs,
		CacheDir:   filepath.Join(cfg.Root, "cni", "cache"),
		BridgeName: cfg.CNI.Bridge, Subnet: cfg.CNI.Subnet,
		IPAMDataDir: filepath.Join(cfg.Root, "cni", "networks"),
	})
	if err != nil {
		return err
	}
	defer nets.Close()
	driver, _ := cgroup.ParseDriver(cfg.Runtime.CgroupDriver) // validated
	var plugins *nri.NRI
	if cfg.NRI.Enabled {
		if plugins, err = nri.New(nri.Config{
			SocketPath: cfg.NRI.SocketPath, DisableConnections: cfg.NRI.DisableConnections,
			PluginPath: cfg.NRI.PluginPath, PluginConfigPath: cfg.NRI.PluginConfigPath,
			RegistrationTimeout: time.Duration(cfg.NRI.RegistrationTimeout),
			RequestTimeout:      time.Duration(cfg.NRI.RequestTimeout),
		}, version); err != nil {
			return err
		}
	}
	mgr, err := sandbox.New(sandbox.Config{
		Network: nets,
		Root:    cfg.Root, State: cfg.State,
		ShimPath: cfg.Runtime.ShimPath, RuncPath: cfg.Runtime.RuncPath, PausePath: cfg.Runtime.PausePath,
		CgroupDriver: driver, CgroupParent: cfg.Runtime.CgroupParent, ShmSize: cfg.Runtime.ShmSize,
		HostResolvConf: "/etc/resolv.conf", HostHosts: "/etc/hosts",
		CreateTimeout: time.Duration(cfg.Runtime.CreateTimeout),
		StopTimeout:   time.Duration(cfg.Runtime.StopTimeout),
		NRI:           plugins,
	})
	if err != nil {
		return err
	}
	images, err := image.Open(cfg.Root, image.PullOptions{
		HostsDir:               cfg.Registry.ConfigPath,
		ProgressTimeout:        time.Duration(cfg.Image.ProgressTimeout),
		MaxConcurrentDownloads: cfg.Image.MaxConcurrentDownloads,
		SmallObjectTimeout:     time.Duration(cfg.Image.SmallObjectTimeout),
		MinBytesPerSecond:      cfg.Image.MinProgressBytesPerSecond,
		Limits:                 layer.Limits{Bytes: cfg.Image.MaxLayerBytes, Files: cfg.Image.MaxLayerFiles},
	})
	if err != nil {
		return fmt.Errorf("opening the image store: %w", err)
	}
	node := nodeInfo(cfg)
	var aa *apparmor.Loader
	if node.AppArmor {
		// Loaded now so that a node that cannot load it says so at start;
		// containers load it again if it has gone meanwhile.
		aa = &apparmor.Loader{}
		if err := aa.EnsureDefault(ctx); err != nil {
			klog.ErrorS(err, "Loading the default AppArmor profile; containers that need it will fail to be created", "profile", apparmor.DefaultProfile)
		}
	}
	var cdiDevs *container.CDI
	if cfg.CDI.Enabled {
		cdiDevs = container.NewCDI(cfg.CDI.SpecDirs)
	}
	containers, err := container.New(container.Config{
		Root:          cfg.Root,
		Node:          node,
		CreateTimeout: time.Duration(cfg.Runtime.CreateTimeout),
		AppArmor:      aa,
		CDI:           cdiDevs,
		NRI:           plugins,
	}, mgr, images)
	if err != nil {
		return err
	}
	userns := true
	if err := layer.ProbeIDMap(filepath.Join(cfg.Root, "images", "tmp"), cfg.Runtime.PausePath); err != nil {
		userns = false
		klog.InfoS("Pods cannot have their own user namespace on this node", "reason", err.Error())
	}
	if cfg.Runtime.StatsPeriod != 0 {
		klog.InfoS("Ignoring runtime.stats_period: stats are read at every call", "statsPeriod", time.Duration(cfg.Runtime.StatsPeriod).String())
	}
	cfgJSON, _ := json.Marshal(statusConfig{Config: cfg, StateDir: filepath.Join(cfg.Root, "images")})
	streams, err := stream.Start(stream.Config{
		Address: cfg.Streaming.Address, Port: cfg.Streaming.Port,
		TLSCertFile: cfg.Streaming.TLSCertFile, TLSKeyFile: cfg.Streaming.TLSKeyFile,
		IdleTimeout: time.Duration(cfg.Streaming.IdleTimeout),
	}, containers, mgr)
	if err != nil {
		return err
	}
	defer streams.Close()
	if cfg.Debug.PprofAddress != "" {
		stop, err := servePprof(cfg.Debug.PprofAddress)
		if err != nil {
			return err
		}
		defer stop()
	}
	if metricsL != nil {
		stop := metrics.Serve(metricsL, metrics.Registry(mgr.ShimMetrics))
		defer stop()
		klog.InfoS("Serving metrics", "address", metricsL.Addr().String())
	}
	srv := cri.New(cri.Options{Version: version, Handlers: cfg.Runtime.Handlers, ConfigJSON: string(cfgJSON), UserNamespaces: userns, Network: nets, Streaming: streams, Node: criNode(), EventBuffer: cfg.Runtime.EventBuffer}, mgr, images, containers)
	g := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(g)

	l, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(l) }()
	klog.InfoS("huskd serving; recovering pods", "version", version, "listen", cfg.Listen, "root", cfg.Root, "state", cfg.State)

	// Calls answer Unavailable until the pods of the last run are back:
	// container records first, so that the shims' snapshots find them.
	if err := containers.Load(); err != nil {
		g.Stop()
		return fmt.Errorf("loading containers: %w", err)
	}
	if err := mgr.Recover(ctx); err != nil {
		g.Stop()
		return fmt.Errorf("recovering: %w", err)
	}
	containers.Reconcile(ctx)
	// Plugins come once the pods are back: they are told of them all.
	if err := plugins.Start(containers.NRIState); err != nil {
		g.Stop()
		return err
	}
	defer plugins.Stop()
	srv.SetReady()
	klog.InfoS("huskd ready")

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	klog.InfoS("huskd stopping; pods keep running")
	srv.Close() // the event streams, which never end by themselves
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		g.Stop()
	}
	return nil
}

// statusConfig is the configuration as a verbose Status shows it.
type statusConfig struct {
	Config
	// StateDir follows containerd's key: critest takes its parent as the
	// filesystem container rootfs layers live on, to probe ID mapping.
	StateDir string `json:"stateDir"`
}

// nodeInfo is what container specs depend on about this node.
func nodeInfo(cfg Config) container.NodeInfo {
	oom := 0
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		fmt.Sscanf(string(b), "%d", &oom)
	}
	_, hugetlbErr := os.Stat("/sys/fs/cgroup/hugetlb")
	var capBnd uint64
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%x", &capBnd)
			}
		}
	}
	return container.NodeInfo{
		Capabilities:       container.CapabilitiesFromMask(capBnd),
		OOMScoreAdjFloor:   oom,
		CgroupV2:           cgroups.IsCgroup2UnifiedMode(),
		HugetlbController:  hugetlbErr == nil || cgroups.IsCgroup2UnifiedMode(),
		SeccompProfileRoot: cfg.Runtime.SeccompProfileRoot,
		AppArmor:           apparmor.Enabled(),
	}
}

// criNode is what request validation checks resource values against.
func criNode() cri.Node {
	read := func(p, fallback string) cpuset.CPUSet {
		b, err := os.ReadFile(p)
		if err != nil {
			b = []byte(fallback)
		}
		s, err := cpuset.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			klog.ErrorS(err, "Reading the node's CPUs or memory nodes; requests are checked without them", "path", p)
		}
		return s
	}
	return cri.Node{
		HugepageSizes: cgroups.HugePageSizes(),
		// Possible rather than online: a CPU plugged in later must not be
		// refused until huskd restarts; one that is offline the kernel
		// refuses itself.
		CPUs: read("/sys/devices/system/cpu/possible", ""),
		// A kernel without NUMA has no node directory and one memory node.
		Mems: read("/sys/devices/system/node/possible", "0"),
	}
}

// listen opens the CRI socket (mode 0660), replacing a stale socket file
// but never one that another huskd still serves.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is already served by another process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := unix.Umask(0o117)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	return l, os.Chmod(path, 0o660)
}

// lockState takes an exclusive lock on the state directory: two huskds on
// one state would tear each other's pods down.
func lockState(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "huskd.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another huskd uses %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
