package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/huskrt/husk/cri"
	"github.com/huskrt/husk/internal/cgroup"
)

// Config is huskd's configuration file, /etc/husk/config.toml. Every field
// has a built-in default; the file only says what differs.
type Config struct {
	Root   string `toml:"root" json:"root" comment:"Persistent data: pod records and files, images."`
	State  string `toml:"state" json:"state" comment:"Volatile state: shim sockets, pinned namespaces, /dev/shm of pods. A tmpfs such as /run."`
	Listen string `toml:"listen" json:"listen" comment:"The CRI socket kubelet and crictl connect to."`

	Runtime   RuntimeConfig   `toml:"runtime" json:"runtime"`
	Image     ImageConfig     `toml:"image" json:"image"`
	Registry  RegistryConfig  `toml:"registry" json:"registry"`
	CNI       CNIConfig       `toml:"cni" json:"cni"`
	Streaming StreamingConfig `toml:"streaming" json:"streaming"`
	CDI       CDIConfig       `toml:"cdi" json:"cdi"`
	Metrics   MetricsConfig   `toml:"metrics" json:"metrics"`
	NRI       NRIConfig       `toml:"nri" json:"nri"`
	Tracing   TracingConfig   `toml:"tracing" json:"tracing"`
	Debug     DebugConfig     `toml:"debug" json:"debug"`
}

// MetricsConfig is the [metrics] table: huskd's own Prometheus metrics
// (calls, operations, pulls, CNI, logs, OOM kills, shims), as containerd's
// and CRI-O's metrics addresses serve theirs. The containers' own metrics
// are ListPodSandboxMetrics' (crictl metricsp), on the CRI socket.
type MetricsConfig struct {
	Address string `toml:"address" json:"address" comment:"Serve Prometheus metrics at /metrics over plain HTTP here (e.g. 127.0.0.1:9090); empty: off. No secret is in them, but anyone who reaches the address reads them: keep it on loopback or behind a firewall or proxy."`
}

// TracingConfig is the [tracing] table: OpenTelemetry spans of the CRI
// calls and their main steps (internal/tracing), sent over OTLP/gRPC as
// containerd's and kubelet's are.
type TracingConfig struct {
	Endpoint      string  `toml:"endpoint" json:"endpoint" comment:"OTLP/gRPC collector to send spans to, as a URL: http://host:4317 (plain) or https://host:4317 (TLS). Empty: OTEL_EXPORTER_OTLP_ENDPOINT (with the exporter's other OTEL_EXPORTER_OTLP_* variables) if set, else no tracing."`
	SamplingRatio float64 `toml:"sampling_ratio" json:"sampling_ratio" comment:"Share of the traces huskd starts that it keeps, from 0 to 1; a call kubelet traces follows kubelet's decision."`
}

// DebugConfig is the [debug] table.
type DebugConfig struct {
	// Go's profiler, for finding what makes a call slow on a real node
	// (as containerd's debug address does).
	PprofAddress string `toml:"pprof_address" json:"pprof_address" comment:"Serve Go's pprof profiles over HTTP here (e.g. 127.0.0.1:6060); empty: off. Keep it on loopback."`
}

// CDIConfig is the [cdi] table: Container Device Interface devices, which
// kubelet asks for by name (from DRA drivers and device plugins) and which
// spec files in these directories define.
type CDIConfig struct {
	Enabled  bool     `toml:"enabled" json:"enabled" comment:"Inject the CDI devices containers ask for (CDI_devices, cdi.k8s.io/ annotations). Off: a container that asks for one fails."`
	SpecDirs []string `toml:"spec_dirs" json:"spec_dirs" comment:"Directories of CDI spec files (.json, .yaml), lowest priority first; written by root (device plugins, DRA drivers, the admin). Read again at each container that asks for a device."`
}

// NRIConfig is the [nri] table: Node Resource Interface plugins, which
// hear of every pod's and container's steps and may adjust a container
// (env, mounts, annotations, resources, devices) before it is created.
// They are as trusted as huskd: docs/security.md.
type NRIConfig struct {
	Enabled             bool     `toml:"enabled" json:"enabled" comment:"Relay pod and container lifecycle events to NRI plugins and apply their adjustments."`
	SocketPath          string   `toml:"socket_path" json:"socket_path" comment:"Where external plugins connect (root only: the socket is 0600 in a 0700 directory made if missing)."`
	DisableConnections  bool     `toml:"disable_connections" json:"disable_connections" comment:"No socket: only the pre-installed plugins of plugin_path run."`
	PluginPath          string   `toml:"plugin_path" json:"plugin_path" comment:"Pre-installed plugins (executables named NN-name), started with huskd."`
	PluginConfigPath    string   `toml:"plugin_config_path" json:"plugin_config_path" comment:"Configuration files of the pre-installed plugins (NN-name.conf or name.conf)."`
	RegistrationTimeout Duration `toml:"plugin_registration_timeout" json:"plugin_registration_timeout" comment:"A plugin that has not registered and synchronized within this is dropped."`
	RequestTimeout      Duration `toml:"plugin_request_timeout" json:"plugin_request_timeout" comment:"A plugin that does not answer an event within this is dropped; the CRI call goes on without it, or fails if the plugin registered with the failure policy fail_request."`
}

// StreamingConfig is the [streaming] table: the server exec, attach and
// port-forward sessions connect to (kubelet proxies kubectl's to it).
type StreamingConfig struct {
	Address     string   `toml:"address" json:"address" comment:"Address the streaming server listens on. Keep it on loopback unless TLS is set: sessions are authorised only by their one-time URL."`
	Port        int      `toml:"port" json:"port" comment:"Its port; 0 picks a free one."`
	TLSCertFile string   `toml:"tls_cert_file" json:"tls_cert_file" comment:"With tls_key_file: serve HTTPS with this certificate."`
	TLSKeyFile  string   `toml:"tls_key_file" json:"tls_key_file" comment:"The certificate's private key."`
	IdleTimeout Duration `toml:"idle_timeout" json:"idle_timeout" comment:"A session with no traffic for this long is closed."`
}

// CNIConfig is the [cni] table.
type CNIConfig struct {
	ConfDir string   `toml:"conf_dir" json:"conf_dir" comment:"Network configurations; the first .conflist/.conf/.json by name wins. Watched."`
	BinDirs []string `toml:"bin_dirs" json:"bin_dirs" comment:"Where CNI plugin binaries are looked up (Debian's containernetworking-plugins install to /usr/lib/cni)."`
	// The network used when conf_dir holds none.
	Bridge string `toml:"bridge" json:"bridge" comment:"Built-in network (used when conf_dir is empty): the bridge's name."`
	Subnet string `toml:"subnet" json:"subnet" comment:"Built-in network: the pods' subnet(s), comma-separated; kubelet's pod CIDR replaces it."`
}

// ImageConfig is the [image] table.
type ImageConfig struct {
	ProgressTimeout        Duration `toml:"progress_timeout" json:"progress_timeout" comment:"A pull that waits this long on the registry without receiving a byte fails (time spent unpacking does not count)."`
	MaxConcurrentDownloads int      `toml:"max_concurrent_downloads" json:"max_concurrent_downloads" comment:"Layers one pull fetches at once."`
	// A registry that sends a byte a second resets progress_timeout
	// forever; these two bound it.
	SmallObjectTimeout        Duration `toml:"small_object_timeout" json:"small_object_timeout" comment:"A manifest, an index, an image config, a token or the registry's API check must arrive whole within this long, or the pull fails naming it and the host."`
	MinProgressBytesPerSecond int64    `toml:"min_progress_bytes_per_second" json:"min_progress_bytes_per_second" comment:"A layer that receives fewer than this many bytes a second over a whole progress_timeout (waiting time only) fails; 0: any byte is progress."`
	// A registry or an image's author is not trusted: a small compressed
	// layer can expand to fill the disk or the inode table.
	MaxLayerBytes int64 `toml:"max_layer_bytes" json:"max_layer_bytes" comment:"Most bytes one layer may expand to (its uncompressed tar, and its files); a pull over it fails naming this key."`
	MaxLayerFiles int64 `toml:"max_layer_files" json:"max_layer_files" comment:"Most files, directories and links one layer may create; a pull over it fails naming this key."`
}

// RegistryConfig is the [registry] table.
type RegistryConfig struct {
	ConfigPath string `toml:"config_path" json:"config_path" comment:"Directory of containerd-style hosts.toml files: <registry host>/hosts.toml, _default/hosts.toml. Pull credentials go only to the registry they are for, and to a plain-HTTP host only if its table there says allow_credentials_over_http = true."`
}

// RuntimeConfig is the [runtime] table.
type RuntimeConfig struct {
	ShimPath  string `toml:"shim_path" json:"shim_path" comment:"husk-shim binary; empty: next to huskd, else on PATH."`
	RuncPath  string `toml:"runc_path" json:"runc_path" comment:"husk-runc binary; empty: next to huskd, else on PATH."`
	PausePath string `toml:"pause_path" json:"pause_path" comment:"husk-pause binary; empty: next to huskd, else on PATH."`
	// kubeadm configures kubelet with the systemd driver; kubelet follows
	// the runtime's answer to RuntimeConfig.
	CgroupDriver string   `toml:"cgroup_driver" json:"cgroup_driver" comment:"How pods' cgroups are made: cgroupfs (directories husk makes) or systemd (scopes systemd makes over D-Bus, in kubelet's slices; needs systemd as init)."`
	CgroupParent string   `toml:"cgroup_parent" json:"cgroup_parent" comment:"Parent of pods whose config names none: a cgroupfs path, or with the systemd driver a slice name. Empty: /husk, or husk.slice."`
	ShmSize      int64    `toml:"shm_size" json:"shm_size" comment:"Bytes of each pod's own /dev/shm."`
	StopTimeout  Duration `toml:"stop_timeout" json:"stop_timeout" comment:"How long a pod's processes get to die after SIGKILL."`
	// kubelet sends absolute paths; this serves relative Localhost refs.
	SeccompProfileRoot string `toml:"seccomp_profile_root" json:"seccomp_profile_root" comment:"Where relative Localhost seccomp profiles are looked up."`
	// RunPodSandbox keeps working after kubelet's 4-minute timeout, so that
	// kubelet's retry gets the result.
	CreateTimeout Duration `toml:"create_timeout" json:"create_timeout" comment:"Upper bound for one RunPodSandbox, whether or not its caller waits."`
	// A subscriber that falls behind is dropped, never waited for: huskd
	// and the shims must not slow down for a stuck client.
	EventBuffer int `toml:"event_buffer" json:"event_buffer" comment:"Container events a GetContainerEvents subscriber (kubelet's Evented PLEG, crictl events) may fall behind before it is dropped."`
	// A RuntimeClass names a handler; husk has one runtime, which these
	// names select too (containerd's config defines runtimes by name).
	Handlers []string `toml:"handlers" json:"handlers" comment:"More runtime handler names (RuntimeClass handlers) for husk's runtime, beside \"\" and \"husk\": each a DNS label."`
	// StatsPeriod is no longer used: stats are read at every call (issue
	// 14). It is still accepted, so that a config file that sets it keeps
	// loading; huskd warns that it is ignored.
	StatsPeriod Duration `toml:"stats_period,omitempty" json:"-"`
}

// Duration is a time.Duration written as "10s" in TOML.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultConfigPath is read when --config is not given; it may be absent.
const DefaultConfigPath = "/etc/husk/config.toml"

func defaultConfig() Config {
	return Config{
		Root:   "/var/lib/husk",
		State:  "/run/husk",
		Listen: "/run/husk/husk.sock",
		Runtime: RuntimeConfig{
			CgroupDriver:       "cgroupfs",
			ShmSize:            64 << 20,
			StopTimeout:        Duration(10 * time.Second),
			SeccompProfileRoot: "/var/lib/kubelet/seccomp",
			CreateTimeout:      Duration(4 * time.Minute),
			EventBuffer:        cri.DefaultEventBuffer,
			Handlers:           []string{},
		},
		// Far above any real image (the largest public layers hold tens of
		// GiB of CUDA or model files, and hundreds of thousands of files).
		Image: ImageConfig{ProgressTimeout: Duration(time.Minute), MaxConcurrentDownloads: 3,
			SmallObjectTimeout: Duration(30 * time.Second), MinProgressBytesPerSecond: 1024,
			MaxLayerBytes: 64 << 30, MaxLayerFiles: 4_000_000},
		Registry: RegistryConfig{ConfigPath: "/etc/husk/certs.d"},
		CNI: CNIConfig{
			ConfDir: "/etc/cni/net.d",
			BinDirs: []string{"/opt/cni/bin", "/usr/lib/cni"},
			Bridge:  "husk0",
			Subnet:  "10.88.0.0/16",
		},
		Streaming: StreamingConfig{Address: "127.0.0.1", IdleTimeout: Duration(4 * time.Hour)},
		// containerd 2.x's defaults: on, and the CDI spec's two dirs.
		CDI: CDIConfig{Enabled: true, SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		// containerd 2.x's defaults (those of the NRI library).
		NRI: NRIConfig{
			Enabled: true, SocketPath: "/var/run/nri/nri.sock",
			PluginPath: "/opt/nri/plugins", PluginConfigPath: "/etc/nri/conf.d",
			RegistrationTimeout: Duration(5 * time.Second), RequestTimeout: Duration(2 * time.Second),
		},
		// containerd's tracing default: every trace, once an endpoint is set.
		Tracing: TracingConfig{SamplingRatio: 1},
	}
}

// loadConfig reads path over the defaults. A missing file is an error only
// when the user named it.
func loadConfig(path string, explicit bool) (Config, error) {
	cfg := defaultConfig()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return cfg, fmt.Errorf("%s: %s", path, sm.String())
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return cfg, fmt.Errorf("%s:%d:%d: %s: %v", path, row, col, strings.Join(de.Key(), "."), de)
		}
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// validate checks the config and fills the binary paths.
func (c *Config) validate() error {
	for name, p := range map[string]string{"root": c.Root, "state": c.State, "listen": c.Listen} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s: %q is not an absolute path", name, p)
		}
	}
	// Shim sockets live at <state>/pods/<64-hex id>/shim.sock and a unix
	// socket path has room for 107 bytes.
	if n := len(filepath.Clean(c.State)) + len("/pods/") + 64 + len("/shim.sock"); n > 107 {
		return fmt.Errorf("state: %q is too long for the shims' socket paths (%d of 107 bytes)", c.State, n)
	}
	if len(c.Listen) > 107 {
		return fmt.Errorf("listen: %q is longer than a unix socket path may be", c.Listen)
	}
	for _, h := range c.Runtime.Handlers {
		if !dnsLabel.MatchString(h) || len(h) > 63 {
			return fmt.Errorf("runtime.handlers: %q is not a DNS label (RuntimeClass's rule for a handler)", h)
		}
	}
	if c.Runtime.EventBuffer <= 0 {
		return fmt.Errorf("runtime.event_buffer must be positive")
	}
	if c.Image.ProgressTimeout <= 0 || c.Image.MaxConcurrentDownloads <= 0 {
		return fmt.Errorf("image: progress_timeout and max_concurrent_downloads must be positive")
	}
	if c.Image.SmallObjectTimeout <= 0 || c.Image.MinProgressBytesPerSecond < 0 {
		return fmt.Errorf("image: small_object_timeout must be positive and min_progress_bytes_per_second not negative")
	}
	if c.Image.MaxLayerBytes <= 0 || c.Image.MaxLayerFiles <= 0 {
		return fmt.Errorf("image: max_layer_bytes and max_layer_files must be positive")
	}
	if c.CNI.Bridge == "" || len(c.CNI.Bridge) > 15 {
		return fmt.Errorf("cni.bridge: %q is not a valid interface name (1-15 bytes)", c.CNI.Bridge)
	}
	if c.Streaming.Port < 0 || c.Streaming.Port > 65535 {
		return fmt.Errorf("streaming.port: %d is not a TCP port", c.Streaming.Port)
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		return fmt.Errorf("streaming: tls_cert_file and tls_key_file go together")
	}
	if a := c.Metrics.Address; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("metrics.address: %q is not host:port: %w", a, err)
		}
	}
	if e := c.Tracing.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing.endpoint: %q is not an http:// or https:// URL of a collector", e)
		}
	}
	if r := c.Tracing.SamplingRatio; !(r >= 0 && r <= 1) {
		return fmt.Errorf("tracing.sampling_ratio: %v is not between 0 and 1", r)
	}
	if c.Streaming.IdleTimeout <= 0 {
		return fmt.Errorf("streaming.idle_timeout: must be positive")
	}
	for _, d := range c.CDI.SpecDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("cdi.spec_dirs: %q is not an absolute path", d)
		}
	}
	if c.NRI.Enabled {
		for name, p := range map[string]string{"socket_path": c.NRI.SocketPath, "plugin_path": c.NRI.PluginPath, "plugin_config_path": c.NRI.PluginConfigPath} {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("nri.%s: %q is not an absolute path", name, p)
			}
		}
		if len(c.NRI.SocketPath) > 107 {
			return fmt.Errorf("nri.socket_path: %q is longer than a unix socket path may be", c.NRI.SocketPath)
		}
		if c.NRI.RegistrationTimeout <= 0 || c.NRI.RequestTimeout <= 0 {
			return fmt.Errorf("nri: plugin_registration_timeout and plugin_request_timeout must be positive")
		}
	}
	if c.Runtime.ShmSize <= 0 {
		return fmt.Errorf("runtime.shm_size: must be positive")
	}
	driver, err := cgroup.ParseDriver(c.Runtime.CgroupDriver)
	if err != nil {
		return fmt.Errorf("runtime.cgroup_driver: %w", err)
	}
	if c.Runtime.CgroupParent != "" {
		if _, err := driver.Parent(c.Runtime.CgroupParent); err != nil {
			return fmt.Errorf("runtime.cgroup_parent: %q %w", c.Runtime.CgroupParent, err)
		}
	}
	if c.Runtime.ShimPath, err = findBinary(c.Runtime.ShimPath, "husk-shim"); err != nil {
		return fmt.Errorf("runtime.shim_path: %w", err)
	}
	if c.Runtime.RuncPath, err = findBinary(c.Runtime.RuncPath, "husk-runc"); err != nil {
		return fmt.Errorf("runtime.runc_path: %w", err)
	}
	if c.Runtime.PausePath, err = findBinary(c.Runtime.PausePath, "husk-pause"); err != nil {
		return fmt.Errorf("runtime.pause_path: %w", err)
	}
	return nil
}

// findBinary returns path if set, else name next to huskd's own binary,
// else name on PATH.
func findBinary(path, name string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", err
		}
		return filepath.Abs(path)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found next to huskd or on PATH", name)
	}
	return filepath.Abs(p)
}

func (c Config) toml() string {
	b, err := toml.Marshal(c)
	if err != nil {
		return "# " + err.Error()
	}
	return string(b)
}

// dnsLabel is an RFC 1123 label, as Kubernetes validates a RuntimeClass's
// handler (apimachinery's IsDNS1123Label, which huskd does not import).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
