// Package containerdtest starts a containerd with its CRI plugin on its own
// socket, root and state, configured like husk's tests (the same hosts.toml
// mirrors, CNI plugins and cgroup driver), so that benchmarks measure husk
// and containerd on one machine in one run. Two releases: today's
// containerd 2.4 with runc 1.5 (built by scripts/containerd2.sh), and
// Debian 12's containerd 1.6, out of support, kept for reference.
package containerdtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/network"
)

// Release is a containerd the benchmarks compare husk with; its value
// names it in tables and metric units (so: no spaces).
type Release string

const (
	// V2 is containerd v2.4.2 with runc v1.5.3, today's peer (issue 19),
	// built from the Go module proxy by scripts/containerd2.sh into
	// $HUSK_CONTAINERD2 (default: the clone's .tools/containerd2).
	V2 Release = "containerd-2.4"
	// Debian is Debian 12's containerd 1.6 with its runc 1.1, from PATH.
	Debian Release = "containerd-1.6"
)

// Releases lists the peers in the order the benchmarks run them: the
// first one installed is the one ratios are taken against.
var Releases = []Release{V2, Debian}

// V2Dir is the directory holding containerd 2.4's containerd,
// containerd-shim-runc-v2 and runc.
func V2Dir() string {
	if d := os.Getenv("HUSK_CONTAINERD2"); d != "" {
		return d
	}
	// Tests run in their package's directory; the clone's root is the
	// first parent holding go.mod.
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools", "containerd2")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Find returns the containerd binary of rel, or an error that says how to
// install it.
func Find(rel Release) (string, error) {
	switch rel {
	case V2:
		dir := V2Dir()
		for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return "", fmt.Errorf("containerd 2.4 is not built (no %s in %q): `make bench` builds it (scripts/containerd2.sh)", b, dir)
			}
		}
		return filepath.Join(dir, "containerd"), nil
	case Debian:
		bin, err := exec.LookPath("containerd")
		if err != nil {
			return "", errors.New("containerd 1.6 (Debian's) is not installed: `make bench` installs it (scripts/deps.sh --bench)")
		}
		return bin, nil
	}
	return "", fmt.Errorf("unknown containerd release %q", rel)
}

// Containerd is one running containerd.
type Containerd struct {
	Release Release
	Dir     string
	Sock    string
	LogPath string
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	cmd     *exec.Cmd
	exited  chan struct{}
	t       testing.TB
}

// Options configure the containerd under test.
type Options struct {
	// Release is the containerd to start; empty means Debian.
	Release Release
	// HostsDir is the registry config_path (hosts.toml directories).
	HostsDir string
	// CNIConfDir holds the CNI network config; empty means none.
	CNIConfDir string
}

// sandboxImage is the pause image both releases pull for their sandboxes:
// the benchmarks serve it from their local registry.
const sandboxImage = "registry.k8s.io/pause:3.9"

// Start starts containerd, or skips the test when that release is not
// installed (`make bench` installs both).
func Start(t testing.TB, opts Options) *Containerd {
	t.Helper()
	if opts.Release == "" {
		opts.Release = Debian
	}
	bin, err := Find(opts.Release)
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("/tmp", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Release: opts.Release, Dir: dir, Sock: filepath.Join(dir, "containerd.sock"), LogPath: filepath.Join(dir, "containerd.log"), t: t}
	cniConf := opts.CNIConfDir
	if cniConf == "" {
		cniConf = filepath.Join(dir, "cni")
	}
	config := configV2(dir, c.Sock, cniConf, opts.HostsDir)
	env := os.Environ()
	if opts.Release == V2 {
		binDir := filepath.Dir(bin)
		config = configV3(dir, c.Sock, cniConf, opts.HostsDir, filepath.Join(binDir, "runc"))
		// containerd finds its shim in PATH: its own first, not Debian's
		// 1.6 one in /usr/bin (exec keeps the last PATH in env).
		env = append(env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "--config", confPath)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.stop)

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(c.Sock); err == nil {
			//lint:ignore SA1019 the builder only renames these; their defaults are the ones wanted
			c.Runtime, err = remote.NewRemoteRuntimeService(context.Background(), "unix://"+c.Sock, 2*time.Minute, nil, false)
			if err == nil {
				//lint:ignore SA1019 the builder only renames these; their defaults are the ones wanted
				c.Images, err = remote.NewRemoteImageService(context.Background(), "unix://"+c.Sock, 2*time.Minute, nil, false)
			}
			if err == nil {
				break
			}
		}
		select {
		case <-c.exited:
			b, _ := os.ReadFile(c.LogPath)
			t.Fatalf("containerd exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// configV2 is Debian's containerd 1.6 configuration (config version 2).
func configV2(dir, sock, cniConf, hostsDir string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Root here lacks CAP_SYS_RESOURCE: never ask for a lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    # The handler Kubernetes' node e2e suite's RuntimeClass specs name, as
    # its containerd CI config defines it.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "opt"), sandboxImage, cniConf, hostsDir)
}

// configV3 is containerd 2.x's configuration (config version 3, where the
// CRI plugin is split into a runtime and an images plugin), the same
// choices as configV2's, with runc at runc.
func configV3(dir, sock, cniConf, hostsDir, runc string) string {
	return fmt.Sprintf(`version = 3
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[plugins.'io.containerd.internal.v1.opt']
  path = %q

# NRI, off by default in 1.6, would listen on the machine's
# /var/run/nri/nri.sock.
[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %q

[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE: never ask for a lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[7]q
        Root = %[8]q
    # The handler Kubernetes' node e2e suite's RuntimeClass specs name, as
    # its containerd CI config defines it.
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.test-handler]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.test-handler.options]
        BinaryName = %[7]q
        Root = %[8]q
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %[9]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "opt"), sandboxImage, hostsDir,
		runc, filepath.Join(dir, "runc"), cniConf)
}

// PID is containerd's process ID.
func (c *Containerd) PID() int { return c.cmd.Process.Pid }

// stop removes every pod through the CRI, stops containerd and the shims
// it left, and removes its directories.
func (c *Containerd) stop() {
	ctx := context.Background()
	if c.Runtime != nil {
		if pods, err := c.Runtime.ListPodSandbox(ctx, nil); err == nil {
			for _, p := range pods {
				_ = c.Runtime.StopPodSandbox(ctx, p.Id)
				_ = c.Runtime.RemovePodSandbox(ctx, p.Id)
			}
		}
		_ = c.Runtime.Close(ctx)
		_ = c.Images.Close(ctx)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	// containerd-shim-runc-v2 processes of this containerd outlive it.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), c.Sock) {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(mounts), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && strings.HasPrefix(f[4], c.Dir+"/") {
			_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	// containerd's cgroup parent for pods that name none, once empty.
	for _, h := range cgroupHierarchies() {
		_ = os.Remove(filepath.Join(h, "k8s.io"))
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Errorf("removing containerd's directory: %v", err)
	}
}

func cgroupHierarchies() []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	return append(hs, "/sys/fs/cgroup")
}

// Network writes husk's built-in network, on a bridge and subnet of its
// own, into a CNI config directory for containerd (Options.CNIConfDir),
// with the masquerade huskd writes for its own bridge, so that both
// runtimes' pods get the same network; the bridge and the masquerade are
// removed at the end.
func Network(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	r := make([]byte, 2)
	_, _ = rand.Read(r)
	bridge := fmt.Sprintf("hkc%x", r)
	subnet := fmt.Sprintf("10.104.%d.0/24", r[0])
	conf, err := network.Builtin(network.Config{
		BridgeName:  bridge,
		Subnet:      subnet,
		IPAMDataDir: filepath.Join(dir, "ipam"),
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-husk.conflist"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	huskdtest.RestoreSysctl(t, "/proc/sys/net/ipv4/ip_forward")
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		if err := network.RemoveMasquerade(bridge); err != nil {
			t.Error(err)
		}
	})
	if err := network.EnsureMasquerade(bridge, subnet); err != nil {
		t.Fatal(err)
	}
	return confDir
}
