// Package huskdtest starts real huskd processes for tests and benchmarks:
// each on its own socket, root and state under a temp directory, driven
// through k8s.io/cri-client as kubelet drives a runtime.
//
// The binaries come from $HUSK_BIN (set by `make test`); tests that need
// them are skipped with a message when it is unset, and fail when not root.
package huskdtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/huskrt/husk/network"
)

// Bin returns the directory holding huskd, husk-shim, husk-runc and
// husk-pause, skipping the test when $HUSK_BIN is unset.
func Bin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HUSK_BIN")
	if dir == "" {
		t.Skip("HUSK_BIN is not set: run through `make test`, which builds the binaries")
	}
	if os.Geteuid() != 0 {
		t.Fatal("integration tests need root (namespaces, mounts, cgroups)")
	}
	return dir
}

// Huskd is one running huskd.
type Huskd struct {
	t       testing.TB
	Bin     string
	Dir     string // holds root/, state/, husk.sock, huskd.log
	Root    string
	State   string
	Sock    string
	LogPath string
	// Bridge and Subnet are the built-in network's of this huskd.
	Bridge, Subnet string
	// DefaultCgroupParent is huskd's default cgroup parent, which huskd removes
	// once its last pod is gone.
	DefaultCgroupParent string
	// NRISocket is where NRI plugins connect to this huskd.
	NRISocket string
	// Args are extra huskd arguments, kept across restarts.
	Args []string
	// Env is added to huskd's environment at each Launch (a fault point,
	// HUSK_FAULT_POINT).
	Env []string

	cmd          *exec.Cmd
	exited       chan struct{}
	afterCleanup []func()
	Runtime      internalapi.RuntimeService
	Images       internalapi.ImageManagerService
	// Raw and RawImages are plain gRPC clients, for calls where the exact
	// request or the gRPC status matters.
	Raw       runtime.RuntimeServiceClient
	RawImages runtime.ImageServiceClient
	conn      *grpc.ClientConn
}

// Config writes a huskd config file for the test and returns the
// arguments that make huskd read it. Unless toml has a [cni] table, the
// test gets a network of its own: an empty CNI configuration directory (so
// the built-in network), a bridge named hk<random> and a random /24 in
// 10.100.0.0/14, and the bridge is deleted when the test ends; host
// settings the bridge plugin changes are put back. Unless toml names one,
// huskd gets a default cgroup parent of its own (/husk-<random>), so that
// huskds of parallel test processes never share one and the cleanup can
// check that huskd removed it. Unless toml names an NRI socket_path, NRI
// plugins connect to a socket of the test's own (Huskd.NRISocket), never
// the node's.
func Config(t testing.TB, toml string) []string {
	t.Helper()
	dir := t.TempDir()
	// Any network the test's pods join may set it, the built-in one or
	// the test's own.
	RestoreSysctl(t, "/proc/sys/net/ipv4/ip_forward")
	if !strings.Contains(toml, "[cni]") {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		bridge := fmt.Sprintf("hk%x", b)
		toml += fmt.Sprintf("\n[cni]\nconf_dir = %q\nbridge = %q\nsubnet = \"10.%d.%d.0/24\"\n",
			filepath.Join(dir, "net.d"), bridge, 100+int(b[0])%4, b[1])
		t.Cleanup(func() {
			_ = exec.Command("ip", "link", "del", bridge).Run()
			if err := network.RemoveMasquerade(bridge); err != nil {
				t.Error(err)
			}
		})
	}
	if !strings.Contains(toml, "cgroup_parent") {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		line := fmt.Sprintf("cgroup_parent = \"/husk-%x\"\n", b)
		if strings.Contains(toml, "[runtime]\n") {
			toml = strings.Replace(toml, "[runtime]\n", "[runtime]\n"+line, 1)
		} else {
			toml += "\n[runtime]\n" + line
		}
	}
	if !strings.Contains(toml, "socket_path") {
		// Never the node's /var/run/nri: a socket of its own (short: a
		// socket path holds 107 bytes) and no pre-installed plugins.
		nriDir, err := os.MkdirTemp("/tmp", "hknri")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(nriDir) })
		lines := fmt.Sprintf("socket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n",
			filepath.Join(nriDir, "nri.sock"), filepath.Join(nriDir, "plugins"), filepath.Join(nriDir, "conf.d"))
		if strings.Contains(toml, "[nri]\n") {
			toml = strings.Replace(toml, "[nri]\n", "[nri]\n"+lines, 1)
		} else {
			toml += "\n[nri]\n" + lines
		}
	}
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", p}
}

// configValue is the string value of key in the config file given in args.
func configValue(args []string, key string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = "([^"]+)"`)
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			b, _ := os.ReadFile(args[i+1])
			if m := re.FindSubmatch(b); m != nil {
				return string(m[1])
			}
		}
	}
	return ""
}

// Start starts huskd with its own directories and waits until it is ready.
// Cleanup stops it and checks that the node is as clean as before: no pod
// left, no mount, cgroup, process or directory of its pods.
func Start(t testing.TB, args ...string) *Huskd {
	t.Helper()
	h := Prepare(t, args...)
	h.Launch()
	return h
}

// Prepare is Start without the start: the test may change Root (to a
// filesystem of its own, mounted before Prepare so that its unmount runs
// after huskd's cleanup) before it calls Launch.
func Prepare(t testing.TB, args ...string) *Huskd {
	t.Helper()
	bin := Bin(t)
	// Short: shim sockets live at <state>/pods/<64 hex>/shim.sock and a
	// socket path holds at most 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "hk")
	if err != nil {
		t.Fatal(err)
	}
	// As /var/lib and /run are: passable by a container's unprivileged
	// host IDs (pods in their own user namespace).
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(args, "--config"); i < 0 {
		args = append(args, Config(t, "")...)
	} else if b, _ := os.ReadFile(args[i+1]); !strings.Contains(string(b), "[cni]") {
		// Else its pods would join the node's own husk0 network.
		t.Fatalf("config %s has no [cni] section: make it with huskdtest.Config", args[i+1])
	}
	h := &Huskd{
		t: t, Bin: bin, Dir: dir, Bridge: configValue(args, "bridge"), Subnet: configValue(args, "subnet"), DefaultCgroupParent: configValue(args, "cgroup_parent"),
		NRISocket: configValue(args, "socket_path"),
		Root:      filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Sock: filepath.Join(dir, "husk.sock"), LogPath: filepath.Join(dir, "huskd.log"),
		Args: args,
	}
	t.Cleanup(h.cleanup)
	return h
}

// Launch starts the huskd process and connects to it.
func (h *Huskd) Launch() {
	h.t.Helper()
	h.LaunchNoWait()
	h.WaitReady()
}

// LaunchNoWait starts the huskd process and returns: for a huskd that is
// to die before it is ready (killed at a fault point during its recovery).
func (h *Huskd) LaunchNoWait() {
	h.t.Helper()
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--root", h.Root, "--state", h.State, "--listen", h.Sock, "--config", "/dev/null", "-v", "4"}, h.Args...)
	h.cmd = exec.Command(filepath.Join(h.Bin, "huskd"), args...)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	// With race-built binaries (make test), huskd's and its shims' race
	// reports go to files that cleanup turns into a failure.
	h.cmd.Env = append(append(os.Environ(), raceEnv(h.Dir)), h.Env...)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
}

// retry calls try until it succeeds, failing the test when huskd exits
// or the deadline passes first.
func (h *Huskd) retry(deadline time.Time, what string, try func() error) {
	h.t.Helper()
	var err error
	if !Until(time.Until(deadline), func() bool {
		if err = try(); err == nil {
			return true
		}
		select {
		case <-h.exited:
			h.t.Fatalf("huskd exited: %v\n%s", h.cmd.ProcessState, h.Log())
		default:
		}
		return false
	}) {
		h.t.Fatalf("huskd not %s after 30s: %v\n%s", what, err, h.Log())
	}
}

// WaitReady waits until huskd answers Version (it answers Unavailable while
// it recovers), then opens the CRI clients.
func (h *Huskd) WaitReady() {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	// The socket first: a gRPC client that finds nothing listening backs
	// off for a second before it tries again, which made every launch
	// take a second more than huskd needs.
	h.retry(deadline, "listening", func() error {
		c, err := net.DialTimeout("unix", h.Sock, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	conn, err := grpc.NewClient("unix://"+h.Sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		h.t.Fatal(err)
	}
	raw := runtime.NewRuntimeServiceClient(conn)
	h.retry(deadline, "ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := raw.Version(ctx, &runtime.VersionRequest{})
		return err
	})
	h.conn, h.Raw, h.RawImages = conn, raw, runtime.NewImageServiceClient(conn)
	//lint:ignore SA1019 the builder only renames these; their defaults are the ones wanted
	h.Runtime, err = remote.NewRemoteRuntimeService(context.Background(), "unix://"+h.Sock, 2*time.Minute, nil, false)
	if err != nil {
		h.t.Fatal(err)
	}
	//lint:ignore SA1019 the builder only renames these; their defaults are the ones wanted
	h.Images, err = remote.NewRemoteImageService(context.Background(), "unix://"+h.Sock, 2*time.Minute, nil, false)
	if err != nil {
		h.t.Fatal(err)
	}
}

// Log returns huskd's log so far.
func (h *Huskd) Log() string {
	b, _ := os.ReadFile(h.LogPath)
	return string(b)
}

func (h *Huskd) closeClients() {
	if h.Runtime != nil {
		_ = h.Runtime.Close(context.Background())
		h.Runtime = nil
	}
	if h.Images != nil {
		_ = h.Images.Close(context.Background())
		h.Images = nil
	}
	if h.conn != nil {
		_ = h.conn.Close()
		h.conn = nil
	}
}

// Kill kills huskd with SIGKILL, as a crash would, and waits for it.
func (h *Huskd) Kill() {
	h.t.Helper()
	h.closeClients()
	_ = h.cmd.Process.Kill()
	<-h.exited
}

// WaitExit waits until huskd has exited by itself (killed at a fault
// point) and closes the clients; it fails the test after timeout.
func (h *Huskd) WaitExit(timeout time.Duration) {
	h.t.Helper()
	select {
	case <-h.exited:
		h.closeClients()
	case <-time.After(timeout):
		h.t.Fatalf("huskd still runs %s later\n%s", timeout, h.Log())
	}
}

// Stop asks huskd to stop with SIGTERM and waits for it.
func (h *Huskd) Stop() {
	h.t.Helper()
	h.closeClients()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(20 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		h.t.Errorf("huskd did not stop within 20s of SIGTERM")
	}
}

// PID is huskd's process ID.
func (h *Huskd) PID() int { return h.cmd.Process.Pid }

// Running reports whether the huskd process is alive.
func (h *Huskd) Running() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// cleanup removes every pod through the CRI, stops huskd, then fails the
// test if anything of the pods is left on the node.
func (h *Huskd) cleanup() {
	// Last: what they remove (cgroup parents) holds what the checks below
	// look for.
	defer func() {
		for i := len(h.afterCleanup) - 1; i >= 0; i-- {
			h.afterCleanup[i]()
		}
	}()
	if h.Running() {
		if h.Runtime == nil {
			h.WaitReady()
		}
		ctx := context.Background()
		pods, err := h.Runtime.ListPodSandbox(ctx, nil)
		if err != nil {
			h.t.Errorf("cleanup: listing pods: %v", err)
		}
		for _, p := range pods {
			if err := h.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
				h.t.Errorf("cleanup: removing pod %s: %v", p.Id, err)
			}
		}
		h.Stop()
	}
	if leaks := h.Leaks(); len(leaks) > 0 {
		h.t.Errorf("left on the node after all pods were removed:\n  %s\nhuskd log:\n%s", strings.Join(leaks, "\n  "), h.Log())
		h.forceClean()
	}
	if races := h.RaceReports(); len(races) > 0 {
		h.t.Errorf("the race detector reported in huskd or a shim:\n%s", strings.Join(races, "\n"))
	}
	if h.t.Failed() {
		h.t.Logf("huskd log kept in %s", h.LogPath)
		return
	}
	_ = os.RemoveAll(h.Dir)
}

// raceEnv makes race-built binaries write their reports to race.<pid>
// files in dir, and go on (a halted huskd would hide the report behind
// the failures it causes).
func raceEnv(dir string) string { return "GORACE=log_path=" + filepath.Join(dir, "race") }

// RaceReports returns the race detector's reports of huskd and its shims
// (when they are race-built; GORACE's log_path is set for them), each
// capped at 8 KiB.
func (h *Huskd) RaceReports() []string {
	files, _ := filepath.Glob(filepath.Join(h.Dir, "race.*"))
	var reports []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 8<<10 {
			b = append(b[:8<<10], "..."...)
		}
		reports = append(reports, f+":\n"+string(b))
	}
	return reports
}

// Leaks lists what of the pods is still on the node: mounts under the
// test's directory, pod directories, processes started from the test's
// binaries with the test's directories, and pod cgroups.
func (h *Huskd) Leaks() []string {
	var leaks []string
	for _, m := range mountsUnder(h.Dir) {
		leaks = append(leaks, "mount "+m)
	}
	for _, d := range []string{filepath.Join(h.Root, "pods"), filepath.Join(h.State, "pods"), filepath.Join(h.Root, "containers")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			leaks = append(leaks, "directory "+filepath.Join(d, e.Name()))
		}
	}
	for _, p := range h.Processes() {
		leaks = append(leaks, "process "+p)
	}
	for _, c := range h.podCgroups() {
		leaks = append(leaks, "cgroup "+c)
	}
	if h.DefaultCgroupParent != "" {
		for _, d := range CgroupDirs(h.DefaultCgroupParent) {
			leaks = append(leaks, "default cgroup parent "+d)
		}
	}
	return append(leaks, h.networkLeaks()...)
}

// networkLeaks lists veths still on the bridge, IP leases still held in
// the built-in network, and iptables rules naming one of the pods.
func (h *Huskd) networkLeaks() []string {
	var leaks []string
	if h.Bridge != "" {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", h.Bridge).Output()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				leaks = append(leaks, "veth "+strings.Fields(line)[1])
			}
		}
	}
	leases, _ := filepath.Glob(filepath.Join(h.Root, "cni", "networks", "*", "*"))
	for _, l := range leases {
		if b := filepath.Base(l); b != "lock" && !strings.HasPrefix(b, "last_reserved_ip") {
			leaks = append(leaks, "IP lease "+l)
		}
	}
	v4, _ := exec.Command("iptables-save").Output()
	v6, _ := exec.Command("ip6tables-save").Output()
	for _, id := range h.podIDsSeen() {
		if strings.Contains(string(v4), id) {
			leaks = append(leaks, "iptables rules of pod "+id)
		}
		if strings.Contains(string(v6), id) {
			leaks = append(leaks, "ip6tables rules of pod "+id)
		}
	}
	return leaks
}

// Shims lists this huskd's live husk-shims: pid and command line.
func (h *Huskd) Shims() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !Alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := bytes.Split(cmdline, []byte{0})
		cl := string(bytes.Join(argv, []byte{' '}))
		if filepath.Base(string(argv[0])) == "husk-shim" && strings.Contains(cl, h.State+"/") {
			out = append(out, e.Name()+" "+cl)
		}
	}
	return out
}

// Processes lists the shims, pauses and container processes of this
// huskd as "pid cmdline".
func (h *Huskd) Processes() []string {
	var out []string
	ids := h.podIDsSeen()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// A zombie holds nothing but its pid. This machine's PID 1 does not
		// reap the orphans it inherits (a pause whose shim the test killed).
		if !Alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if strings.Contains(cl, h.Dir+"/") && !strings.Contains(cl, "huskd ") {
			out = append(out, e.Name()+" "+cl)
			continue
		}
		// A pause or a container's process shows no path of ours; its
		// cgroup does.
		cg, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		for _, id := range ids {
			if strings.Contains(string(cg), id) {
				out = append(out, e.Name()+" "+cl)
				break
			}
		}
	}
	return out
}

// podIDsSeen returns the IDs of every pod and container this huskd
// logged.
func (h *Huskd) podIDsSeen() []string {
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(h.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, key := range []string{`podSandboxID="`, `containerID="`} {
			if i := strings.Index(line, key); i >= 0 {
				id := line[i+len(key):]
				if j := strings.IndexByte(id, '"'); j == 64 {
					ids = append(ids, id[:j])
				}
			}
		}
	}
	return ids
}

// podCgroups lists cgroup directories, in any hierarchy, named after a
// pod this huskd created.
func (h *Huskd) podCgroups() []string {
	var out []string
	ids := map[string]bool{}
	for _, id := range h.podIDsSeen() {
		ids[id] = true
	}
	if len(ids) == 0 {
		return nil
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, hier := range hierarchies {
		_ = filepath.WalkDir(hier, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			// cri-husk-<id>.scope: the systemd driver's name for it.
			name := strings.TrimSuffix(strings.TrimPrefix(d.Name(), "cri-husk-"), ".scope")
			if ids[name] {
				out = append(out, p)
				return filepath.SkipDir
			}
			if p != hier && strings.Count(strings.TrimPrefix(p, hier), "/") > 6 {
				return filepath.SkipDir
			}
			return nil
		})
	}
	return out
}

func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// forceClean removes what a failed test left, so that one failure does not
// spill into the next test.
func (h *Huskd) forceClean() {
	// Killed until none is left (or 30s pass): a process still dying holds
	// the mounts and cgroups removed below.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ps := h.Processes()
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			pid, _ := strconv.Atoi(strings.Fields(p)[0])
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	ms := mountsUnder(h.Dir)
	for i := len(ms) - 1; i >= 0; i-- {
		_ = syscall.Unmount(ms[i], syscall.MNT_DETACH)
	}
	for _, c := range h.podCgroups() {
		_ = os.Remove(c)
	}
	if h.DefaultCgroupParent != "" {
		RemoveCgroup(h.DefaultCgroupParent)
	}
}

// Cmdline returns a process's command line with spaces between arguments.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.TrimSpace(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// Reboot does to this huskd's node what a reboot does, as far as a test
// can without rebooting: huskd and every shim, pause and container
// process of its pods are killed with SIGKILL (waited for until none is
// alive), every mount under the test's directory is lost (the pods'
// namespace pins, /dev/shm, rootfs overlays), the state directory (tmpfs
// in production) is emptied, and the pods' cgroups, under huskd's default
// cgroup parent, are removed. The root survives, as a disk does. Launch
// starts huskd again.
//
// What it cannot do: the kernel, the bridge, iptables rules and the CNI
// plugins' files outside the root survive; the pods' network namespaces
// go only as the kernel frees them once nothing holds them.
func (h *Huskd) Reboot() {
	h.t.Helper()
	h.Kill()
	Eventually(h.t, 30*time.Second, "every process of the pods dies", func() bool {
		ps := h.Processes()
		for _, p := range ps {
			pid, _ := strconv.Atoi(strings.Fields(p)[0])
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(ps) == 0
	})
	ms := mountsUnder(h.Dir)
	for i := len(ms) - 1; i >= 0; i-- {
		if err := syscall.Unmount(ms[i], syscall.MNT_DETACH); err != nil {
			h.t.Fatalf("unmounting %s: %v", ms[i], err)
		}
	}
	entries, err := os.ReadDir(h.State)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(h.State, e.Name())); err != nil {
			h.t.Fatal(err)
		}
	}
	if h.DefaultCgroupParent == "" {
		h.t.Fatal("Reboot needs huskd's default cgroup parent, which holds the pods' cgroups")
	}
	for _, d := range CgroupDirs(h.DefaultCgroupParent) {
		if err := removeCgroupTree(d); err != nil {
			h.t.Fatal(err)
		}
	}
}

// removeCgroupTree removes the cgroup directory d and every one under it,
// deepest first: each must be empty of processes.
func removeCgroupTree(d string) error {
	entries, err := os.ReadDir(d)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(d, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(d)
}
