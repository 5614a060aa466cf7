package kubelet

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/systemd"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// node is one kubelet running standalone (no API server, pods from its
// static pod directory) against a huskd.
type node struct {
	t         testing.TB
	name      string // node name; a static pod is named <pod>-<node>
	dir       string // root dir, cert dir, manifests, logs, config
	rootDir   string
	certDir   string
	manifests string
	podLogs   string
	logPath   string
	host      host
	port      int // kubelet's HTTPS API (authenticated, debugging handlers)
	healthz   int

	cmd    *exec.Cmd
	exited chan struct{}
	client *http.Client
}

// kubeletBinary is $HUSK_KUBELET, built by scripts/kubelet.sh.
func kubeletBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("HUSK_KUBELET")
	if bin == "" {
		t.Skip("HUSK_KUBELET is not set: run through `make test`, which builds kubelet with scripts/kubelet.sh")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("HUSK_KUBELET: %v (scripts/kubelet.sh builds it)", err)
	}
	return bin
}

// host is how the node's cgroups are run, chosen by what the host is.
type host struct {
	// driver is kubelet's cgroupDriver and huskd's cgroup_driver: systemd
	// on a cgroup v2 host with systemd as init (a kubeadm node, and the VM
	// of make test-cgroupv2), cgroupfs elsewhere (this cgroup v1 host).
	driver string
	// version is the cgroup version kubelet must report it runs on.
	version int
	// cgroupRoot is kubelet's cgroupRoot: with cgroupfs one of the test's
	// own, so that kubelet's kubepods tree never meets a real kubelet's or
	// another test's; with systemd the default, "/", whose kubepods.slice
	// the test makes sure no other kubelet has.
	cgroupRoot string
}

// detectHost decides the node's cgroup driver by what the host is.
func detectHost() host {
	if cgroups.IsCgroup2UnifiedMode() && systemd.IsRunningSystemd() {
		return host{driver: "systemd", version: 2, cgroupRoot: "/"}
	}
	v := 1
	if cgroups.IsCgroup2UnifiedMode() {
		v = 2
	}
	return host{driver: "cgroupfs", version: v}
}

// kubepods is the cgroupfs path of kubelet's pods' cgroup.
func (h host) kubepods() string {
	if h.driver == "systemd" {
		return "/kubepods.slice"
	}
	return filepath.Join(h.cgroupRoot, "kubepods")
}

// podCgroup is the cgroupfs path of the cgroup kubelet makes for a
// best-effort pod: kubepods/besteffort/pod<uid> with cgroupfs; with
// systemd the slices that name converts to, their dashes kubelet's
// separators (so the uid's own dashes become underscores).
func (h host) podCgroup(uid string) string {
	if h.driver == "systemd" {
		pod := "kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		return h.kubepods() + "/kubepods-besteffort.slice/" + pod
	}
	return h.kubepods() + "/besteffort/pod" + uid
}

// containerCgroup is where huskd puts a container of that pod: a
// directory named by its ID with cgroupfs, a scope of systemd's with
// systemd.
func (h host) containerCgroup(uid, id string) string {
	if h.driver == "systemd" {
		return h.podCgroup(uid) + "/cri-husk-" + id + ".scope"
	}
	return h.podCgroup(uid) + "/" + id
}

// timeScale multiplies the test's deadlines: $HUSK_TEST_TIMESCALE, set
// where the machine is many times slower than the hosts the deadlines
// were chosen on (scripts/vm/guest-run.sh sets it in the cgroup v2 VM,
// which qemu emulates).
var timeScale = func() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("HUSK_TEST_TIMESCALE")); err == nil && n > 1 {
		return time.Duration(n)
	}
	return 1
}()

// scaled is a deadline of d on this host scaled to the machine's speed.
func scaled(d time.Duration) time.Duration { return d * timeScale }

// kernelTunables are the sysctls kubelet's container manager sets at
// start (setupKernelTunables) unless protectKernelDefaults, which would
// refuse to start on a node that has other values: the test lets kubelet
// write them and puts them back.
var kernelTunables = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// hostPaths are what kubelet writes outside its root dir whatever its
// configuration: the device plugin socket's directory (a constant of the
// device plugin API) and the /var/log/containers symlinks.
var hostPaths = []string{"/var/lib/kubelet/device-plugins", "/var/log/containers"}

// prepareHost readies what kubelet changes on the host and registers its
// restoration: the kernel tunables, the hard-coded host paths, and the
// cgroup root (see host). Call it before huskdtest.Start: its cleanup then
// runs after huskd has removed its pods, when the cgroups are empty.
func prepareHost(t testing.TB) host { return prepareHostAt(t, "") }

// prepareHostAt is prepareHost with cgroupfs's cgroup root given: "/"
// (where the node e2e suite's specs look for kubelet's cgroups) must hold
// no kubepods yet, and kubepods goes at the end; "" is a new one of the
// test's own.
func prepareHostAt(t testing.TB, cgroupRoot string) host {
	t.Helper()
	return prepareHostWith(t, cgroupRoot, false)
}

// prepareHostWith is prepareHostAt; with ownMounts (a kubelet started by
// startNodeWith with ownMounts, which writes hostPaths in a mount
// namespace of its own) it leaves hostPaths alone.
func prepareHostWith(t testing.TB, cgroupRoot string, ownMounts bool) host {
	t.Helper()
	for _, s := range kernelTunables {
		p := filepath.Join("/proc/sys", s)
		if b, err := os.ReadFile(p); err == nil {
			t.Cleanup(func() {
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Errorf("restoring %s to %s: %v", p, strings.TrimSpace(string(b)), err)
				}
			})
		}
	}
	// What of hostPaths the node lacks now goes at the end, from the
	// topmost missing directory down.
	for _, p := range hostPaths {
		if ownMounts {
			break
		}
		top := ""
		for d := p; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); !os.IsNotExist(err) {
				break
			}
			top = d
		}
		if top != "" {
			t.Cleanup(func() { _ = os.RemoveAll(top) })
		}
	}

	h := detectHost()
	if h.driver == "systemd" {
		prepareSlices(t, h)
		return h
	}
	if cgroupRoot == "/" {
		h.cgroupRoot = "/"
		for _, hier := range hierarchies() {
			if _, err := os.Stat(filepath.Join(hier, h.kubepods())); err == nil {
				t.Fatalf("%s exists: a kubelet runs on this node, and the test's would share its pods' cgroups", filepath.Join(hier, h.kubepods()))
			}
		}
		t.Cleanup(func() {
			for _, left := range removeCgroupTree(h.kubepods()) {
				t.Errorf("cgroup left behind: %s", left)
			}
		})
		return h
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	h.cgroupRoot = fmt.Sprintf("/hkkubelet-%x", b)
	t.Cleanup(func() {
		for _, left := range removeCgroupTree(h.cgroupRoot) {
			t.Errorf("cgroup left behind: %s", left)
		}
	})
	for _, hier := range hierarchies() {
		d := filepath.Join(hier, h.cgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("creating cgroup root %s: %v", d, err)
		}
		// A new cpuset cgroup has no CPUs and no memory nodes: no task could
		// join it or any cgroup kubelet makes below it.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(hier, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					t.Fatalf("copying %s to %s: %v", f, d, err)
				}
			}
		}
	}
	return h
}

// prepareSlices makes sure that no kubelet has kubepods.slice yet, and
// registers its removal: kubelet asks systemd for its slices (kubepods,
// the QoS classes, each pod's) and leaves them when it stops; stopping
// kubepods.slice stops those below it.
func prepareSlices(t testing.TB, h host) {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup", h.kubepods())
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: a kubelet runs on this node, and the test's would share its pods' slices", dir)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("systemctl", "stop", "kubepods.slice").CombinedOutput(); err != nil {
			t.Errorf("systemctl stop kubepods.slice: %v: %s", err, out)
		}
		huskdtest.Eventually(t, scaled(10*time.Second), "systemd removes "+dir+" with kubepods.slice", func() bool {
			_, err := os.Stat(dir)
			return os.IsNotExist(err)
		})
	})
}

// hierarchies are the mount points of the cgroup hierarchies: on a v1 or
// hybrid host one per controller (and the named systemd one, and the
// unified one), on a v2 host the unified one alone.
func hierarchies() []string {
	return mountPoints(func(fields []string) bool {
		// The filesystem type is the first field after " - ".
		i := slices.Index(fields, "-")
		return i > 4 && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2")
	})
}

// removeCgroupTree removes cgroup path p and everything below it from every
// hierarchy, deepest first, and returns the directories it could not
// remove (a cgroup with a process in it cannot be).
func removeCgroupTree(p string) []string {
	var left []string
	for _, h := range hierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, p), func(d string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, d)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				left = append(left, fmt.Sprintf("%s (%v)", dirs[i], err))
			}
		}
	}
	return left
}

// kubeletConfig is the KubeletConfiguration of the test's node. Each
// setting that differs from kubelet's defaults says why.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[1]s
%[9]s
# The QoS tree (kubepods, burstable, besteffort) and node allocatable
# enforcement as on a real node, under the cgroup root prepareHost chose.
cgroupRoot: %[2]s
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
staticPodPath: %[3]s
podLogsDir: %[4]s
volumePluginDir: %[5]s
resolvConf: %[6]s
# Loopback only, on ports nobody else uses.
address: 127.0.0.1
port: %[7]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[8]d
# No API server to ask: anyone on loopback may read and run.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
# The test must leave no iptables rule of its own.
makeIPTablesUtilChains: false
# root here lacks CAP_SYS_RESOURCE: kubelet's default -999 cannot be written.
oomScoreAdj: 0
# With a CRI runtime hairpin traffic is the CNI plugin's business.
hairpinMode: none
# A shared machine's disk or memory use must not evict or refuse the pod.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`

// cgroupSettings are the lines of kubeletConfig for the host's cgroups.
func (h host) cgroupSettings() string {
	s := "# huskd answers RuntimeConfig with its driver, the host's; kubelet\n" +
		"# takes it from there and checks that this one agrees.\n" +
		"cgroupDriver: " + h.driver
	if h.version == 1 {
		s += "\n# This node is cgroup v1 (hybrid), which kubelet refuses by default.\nfailCgroupV1: false"
	}
	return s
}

// startNode starts kubelet against the huskd listening on sock, and waits
// until its healthz answers; extraConfig is added to its configuration.
// Cleanup stops it by its PID and unmounts its root dir.
func startNode(t testing.TB, bin, sock string, h host, extraConfig string) *node {
	t.Helper()
	return startNodeWith(t, bin, sock, h, extraConfig, false)
}

// privateDirs are the parents of hostPaths that a kubelet started with
// ownMounts finds empty, each a tmpfs of its own. /var/lib/kubelet holds
// the device manager's directory, a constant of the device plugin API
// whatever kubelet's root dir: at start kubelet removes every socket in it
// and listens on its kubelet.sock there.
var privateDirs = []string{"/var/lib/kubelet", "/var/log/containers"}

// startNodeWith is startNode; with ownMounts, kubelet runs in a mount
// namespace of its own where privateDirs are tmpfs, so that it leaves
// alone the sockets, checkpoint and log links of another kubelet running
// on the machine (a node e2e run), and needs no prepareHost of hostPaths
// (prepareHostWith). Its other mounts (its root dir made shared) are then
// private to it too, and go with it; the runtime sees its files all the
// same. A privateDir the host lacks is made as a mount point and removed
// at the end if still empty, never recursively: another kubelet may have
// started to use it meanwhile.
func startNodeWith(t testing.TB, bin, sock string, h host, extraConfig string, ownMounts bool) *node {
	t.Helper()
	if ownMounts {
		for _, d := range privateDirs {
			if _, err := os.Stat(d); os.IsNotExist(err) {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Remove(d) })
			}
		}
	}
	dir, err := os.MkdirTemp("/tmp", "hkkubelet")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := &node{
		t: t, name: fmt.Sprintf("hk-node-%x", b), dir: dir,
		rootDir: filepath.Join(dir, "root"), certDir: filepath.Join(dir, "pki"),
		manifests: filepath.Join(dir, "manifests"), podLogs: filepath.Join(dir, "pod-logs"),
		logPath: filepath.Join(dir, "kubelet.log"), host: h,
		port: huskdtest.FreePort(t), healthz: huskdtest.FreePort(t),
	}
	t.Cleanup(n.cleanup)
	for _, d := range []string{n.rootDir, n.manifests, n.podLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The pod's DNS comes from here (no cluster DNS): a file of the test's
	// own shows that kubelet's choice reaches the container.
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\nsearch husk.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "kubelet.yaml")
	body := fmt.Sprintf(kubeletConfig, sock, h.cgroupRoot, n.manifests, n.podLogs,
		filepath.Join(dir, "volume-plugins"), resolv, n.port, n.healthz, h.cgroupSettings()) + extraConfig
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := []string{bin, "--config", cfg, "--root-dir", n.rootDir, "--cert-dir", n.certDir,
		"--hostname-override", n.name, "--v", "2"}
	if ownMounts {
		// unshare and sh exec kubelet: its PID is the command's.
		script := `for d in ` + strings.Join(privateDirs, " ") + `; do mount -t tmpfs -o size=16m,mode=0755 hkkubelet "$d" || exit 1; done; exec "$@"`
		args = append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"}, args...)
	}
	n.cmd = exec.Command(args[0], args[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting kubelet: %v", err)
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()

	hc := &http.Client{Timeout: scaled(5 * time.Second)}
	healthz := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.healthz)
	n.eventually(t, scaled(2*time.Minute), "kubelet's healthz answers ok", func() (bool, string) {
		resp, err := hc.Get(healthz)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
	n.client = n.httpsClient()
	return n
}

// httpsClient trusts exactly the self-signed certificate kubelet wrote to
// its cert dir at start.
func (n *node) httpsClient() *http.Client {
	n.t.Helper()
	pem, err := os.ReadFile(filepath.Join(n.certDir, "kubelet.crt"))
	if err != nil {
		n.t.Fatalf("kubelet's serving certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		n.t.Fatalf("no certificate in %s", filepath.Join(n.certDir, "kubelet.crt"))
	}
	return &http.Client{
		Timeout:   scaled(time.Minute),
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: n.name}},
	}
}

// do sends a request to kubelet's API and returns the body of a 200.
func (n *node) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d%s", n.port, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// pod is the part of a v1.Pod the test reads.
type pod struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
	Terminated *struct {
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"terminated"`
}

func (p *pod) condition(typ string) string {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func (p *pod) container(name string) *containerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// runtimeID is the container's ID in the runtime: "husk://<id>" → "<id>".
func (c *containerStatus) runtimeID() string {
	_, id, _ := strings.Cut(c.ContainerID, "://")
	return id
}

// summary is a pod's status in one line, for failure messages.
func (p *pod) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s ready=%s", p.Status.Phase, p.condition("Ready"))
	for _, c := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " [%s ready=%v restarts=%d id=%.20s", c.Name, c.Ready, c.RestartCount, c.ContainerID)
		switch s := c.State; {
		case s.Running != nil:
			b.WriteString(" running")
		case s.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", s.Waiting.Reason, s.Waiting.Message)
		case s.Terminated != nil:
			fmt.Fprintf(&b, " terminated %d %s", s.Terminated.ExitCode, s.Terminated.Reason)
		}
		if t := c.LastState.Terminated; t != nil {
			fmt.Fprintf(&b, " last: terminated %d %s", t.ExitCode, t.Reason)
		}
		b.WriteString("]")
	}
	return b.String()
}

// getJSON decodes the answer to GET path into v.
func (n *node) getJSON(path string, v any) error {
	body, err := n.do(http.MethodGet, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %.200s", path, err, body)
	}
	return nil
}

// pods reads GET /pods: the static pods with the status kubelet keeps for
// them (with no API server, kubelet fills it in from its status manager).
func (n *node) pods() ([]pod, error) {
	var list struct {
		Items []pod `json:"items"`
	}
	if err := n.getJSON("/pods", &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// waitPod polls /pods until the pod named name satisfies cond, and returns
// it; it fails the test after timeout, saying what it saw last.
func (n *node) waitPod(t testing.TB, timeout time.Duration, name, what string, cond func(*pod) bool) *pod {
	t.Helper()
	var found *pod
	n.eventually(t, timeout, "pod "+name+" "+what, func() (bool, string) {
		pods, err := n.pods()
		if err != nil {
			return false, err.Error()
		}
		for i := range pods {
			if pods[i].Metadata.Name == name {
				found = &pods[i]
				return cond(found), found.summary()
			}
		}
		return false, fmt.Sprintf("no pod %s among %d", name, len(pods))
	})
	return found
}

// eventually polls cond every 200 ms until it holds; after timeout, or if
// kubelet exits meanwhile, it fails the test with what cond saw last and
// the end of kubelet's log.
func (n *node) eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		select {
		case <-n.exited:
			t.Fatalf("kubelet exited (%v) while waiting until %s; last seen: %s\nkubelet log:\n%s", n.cmd.ProcessState, what, seen, n.logTail(60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting until %s; last seen: %s\nkubelet log:\n%s", timeout, what, seen, n.logTail(60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeManifest puts a static pod manifest in place atomically, so that
// kubelet never reads half of it.
func (n *node) writeManifest(name, body string) string {
	n.t.Helper()
	p := filepath.Join(n.manifests, name)
	tmp := filepath.Join(n.dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// metric is the sum of the samples of a metric family in kubelet's
// /metrics (a histogram's: name_count).
func (n *node) metric(name string) (float64, error) {
	b, err := n.do("GET", "/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("kubelet's /metrics has no %s", name)
	}
	return sum, nil
}

func (n *node) log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

func (n *node) logTail(lines int) string {
	all := strings.Split(strings.TrimRight(n.log(), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// stop sends SIGTERM to kubelet (by its PID: the test must not touch any
// other kubelet on the machine) and waits for it; SIGKILL after 30s.
func (n *node) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(scaled(30 * time.Second)):
		n.t.Errorf("kubelet (pid %d) did not stop within %s of SIGTERM; killing it", n.cmd.Process.Pid, scaled(30*time.Second))
		_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
}

// cleanup stops kubelet and unmounts what it mounted under its dir (its
// root dir, which it bind-mounts onto itself to make it shared, and any pod
// volume). The pods are left to huskd's cleanup, which runs after this.
func (n *node) cleanup() {
	if n.cmd != nil {
		n.stop()
	}
	ms := mountsUnder(n.dir)
	for i := len(ms) - 1; i >= 0; i-- {
		if err := syscall.Unmount(ms[i], syscall.MNT_DETACH); err != nil {
			n.t.Errorf("unmounting %s: %v", ms[i], err)
		}
	}
	removeLogLinks(n.podLogs)
	if left := mountsUnder(n.dir); len(left) > 0 {
		n.t.Errorf("mounts left under %s: %v", n.dir, left)
		return
	}
	if n.t.Failed() {
		n.t.Logf("kubelet's log and dirs kept in %s", n.dir)
		return
	}
	_ = os.RemoveAll(n.dir)
}

// removeLogLinks removes the /var/log/containers symlinks that point into
// the test's pod log dir: kubelet removes them when it garbage-collects a
// container, which a test stopped half way never lets it do.
func removeLogLinks(podLogs string) {
	entries, _ := os.ReadDir("/var/log/containers")
	for _, e := range entries {
		p := filepath.Join("/var/log/containers", e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, podLogs+"/") {
			_ = os.Remove(p)
		}
	}
}

// mountsUnder lists the mount points at or under dir, in mount order.
func mountsUnder(dir string) []string {
	return mountPoints(func(fields []string) bool {
		return fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")
	})
}

// mountPoints lists, in mount order, the mount points of the mountinfo
// lines (split into fields, at least five) that match.
func mountPoints(match func(fields []string) bool) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && match(fields) {
			out = append(out, fields[4])
		}
	}
	return out
}

// probeCounts reads kubelet's /metrics/probes: prober_probe_total of one
// container, by "<probe_type>/<result>".
func (n *node) probeCounts(podName, containerName string) (map[string]int, error) {
	body, err := n.do(http.MethodGet, "/metrics/probes")
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "prober_probe_total{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "prober_probe_total{"), "} ")
		if !ok {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k], _ = strconv.Unquote(v)
		}
		if l["pod"] != podName || l["container"] != containerName {
			continue
		}
		c, _ := strconv.ParseFloat(value, 64)
		counts[l["probe_type"]+"/"+l["result"]] += int(c)
	}
	return counts, nil
}

// containerLogs reads GET /containerLogs/<ns>/<pod>/<container>.
func (n *node) containerLogs(ns, podName, ctr string, previous bool) (string, error) {
	q := ""
	if previous {
		q = "?previous=true"
	}
	body, err := n.do(http.MethodGet, fmt.Sprintf("/containerLogs/%s/%s/%s%s", ns, podName, ctr, q))
	return string(body), err
}

// run runs cmd (words separated by single spaces: kubelet splits on them)
// in a container through POST /run/<ns>/<pod>/<container>.
func (n *node) run(ns, podName, ctr, cmd string) (string, error) {
	body, err := n.do(http.MethodPost, fmt.Sprintf("/run/%s/%s/%s?cmd=%s", ns, podName, ctr, url.QueryEscape(cmd)))
	return string(body), err
}

// podCgroupDirs are the directories of a pod's cgroup in every hierarchy.
func (n *node) podCgroupDirs(uid string) []string {
	var out []string
	for _, h := range hierarchies() {
		d := filepath.Join(h, n.host.podCgroup(uid))
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// criErrors returns the lines of kubelet's log that report a failed call
// to the runtime: errors (klog severity E) logged by the CRI client
// (remote_runtime.go, remote_image.go: "<Call> from runtime service
// failed", "... from image service failed") or that carry a gRPC status
// ("rpc error: code = ..."), wherever kubelet logged them; it sets apart
// those expected knows the reason of.
func criErrors(log string, expected func(line string) bool) (unexpected, known []string) {
	for _, line := range strings.Split(log, "\n") {
		if len(line) < 5 || line[0] != 'E' || !isDigits(line[1:5]) {
			continue
		}
		if !strings.Contains(line, "remote_runtime.go") && !strings.Contains(line, "remote_image.go") &&
			!strings.Contains(line, "from runtime service failed") && !strings.Contains(line, "from image service failed") &&
			!strings.Contains(line, "rpc error:") {
			continue
		}
		if expected != nil && expected(line) {
			known = append(known, line)
			continue
		}
		unexpected = append(unexpected, line)
	}
	return unexpected, known
}

func isDigits(s string) bool {
	return !slices.ContainsFunc([]byte(s), func(c byte) bool { return c < '0' || c > '9' })
}

// waitLog polls a container's log (the previous instance's with previous)
// through kubelet until it is want: the shim writes the log as the
// container prints, so a container may be ready before its line is there.
func (n *node) waitLog(t *testing.T, podName, ctr string, previous bool, want string) {
	t.Helper()
	what := fmt.Sprintf("the log of %s (previous=%v) is %q", ctr, previous, want)
	n.eventually(t, scaled(30*time.Second), what, func() (bool, string) {
		out, err := n.containerLogs("default", podName, ctr, previous)
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(out) == want, fmt.Sprintf("%q", out)
	})
}

// podStats is the part of a pod's /stats/summary entry the test reads.
type podStats struct {
	PodRef struct {
		Name string `json:"name"`
	} `json:"podRef"`
	Containers []struct {
		Name string `json:"name"`
		CPU  struct {
			UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
		} `json:"cpu"`
		Memory struct {
			WorkingSetBytes uint64 `json:"workingSetBytes"`
		} `json:"memory"`
		Rootfs struct {
			CapacityBytes uint64 `json:"capacityBytes"`
		} `json:"rootfs"`
		Logs struct {
			UsedBytes uint64 `json:"usedBytes"`
		} `json:"logs"`
	} `json:"containers"`
}

// podStats reads GET /stats/summary and returns the pod's entry.
func (n *node) podStats(podName string) (*podStats, error) {
	var summary struct {
		Pods []podStats `json:"pods"`
	}
	if err := n.getJSON("/stats/summary", &summary); err != nil {
		return nil, err
	}
	for i := range summary.Pods {
		if summary.Pods[i].PodRef.Name == podName {
			return &summary.Pods[i], nil
		}
	}
	return nil, fmt.Errorf("no pod %s in /stats/summary (%d pods)", podName, len(summary.Pods))
}
