// Package kubelet runs a real kubelet (v1.37.2, built by scripts/kubelet.sh)
// against a real huskd: standalone, with a static pod, so that every CRI
// call, its order and its timing are kubelet's own and nothing is mocked.
//
// The test needs root and $HUSK_KUBELET, $HUSK_BIN and $HUSK_BUSYBOX, which
// `make test` sets; it is skipped when $HUSK_KUBELET is unset.
package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// image is the name the pod asks for; hosts.toml mirrors serve it (and
// anything else of registry.k8s.io) from the test's registry on 127.0.0.1.
const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// manifest is the static pod: two containers sharing an emptyDir, an exec
// readiness probe that passes once main has written its file, and an exec
// liveness probe, each with a timeout in seconds (%[1]d: kubelet's default,
// 1, scaled to the machine). Both trap SIGTERM so that stopping them takes
// no grace period.
const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  hostname: husk-web
  terminationGracePeriodSeconds: 5
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: main
    image: ` + image + `
    command: ["sh", "-c", "trap 'exit 0' TERM; echo main started; echo hello from main > /shared/hello; while true; do sleep 1; done"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
    readinessProbe:
      exec:
        command: ["cat", "/shared/hello"]
      periodSeconds: 1
      timeoutSeconds: %[1]d
    livenessProbe:
      exec:
        command: ["sh", "-c", "test -d /proc/1"]
      periodSeconds: 1
      timeoutSeconds: %[1]d
  - name: sidecar
    image: ` + image + `
    command: ["sh", "-c", "trap 'exit 0' TERM; echo sidecar started; while true; do sleep 1; done"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
`

func TestStaticPod(t *testing.T) { staticPod(t, false) }

// TestStaticPodEventedPLEG is TestStaticPod with kubelet's EventedPLEG
// feature gate on (KEP-3386): kubelet subscribes to huskd's
// GetContainerEvents and relists a pod at once when one of its containers
// stops, besides its relisting every second. The pod must behave exactly
// the same, restarts included, and kubelet must keep the stream, across
// huskd's restart too.
func TestStaticPodEventedPLEG(t *testing.T) { staticPod(t, true) }

// The metrics kubelet's Evented PLEG keeps (pkg/kubelet/metrics): streams
// opened, streams that failed, and events received.
const (
	eventedConnections = "kubelet_evented_pleg_connection_success_count"
	eventedErrors      = "kubelet_evented_pleg_connection_error_count"
	eventedEvents      = "kubelet_evented_pleg_connection_latency_seconds_count"
)

func staticPod(t *testing.T, evented bool) {
	bin := kubeletBinary(t)
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	huskdtest.Bin(t)
	host := prepareHost(t)
	t.Logf("cgroup v%d, driver %s, kubelet's cgroupRoot %s, deadlines x%d", host.version, host.driver, host.cgroupRoot, timeScale)

	reg := images.StartRegistry(t)
	files, err := images.BusyboxFiles(bb)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "e2e-test-images/busybox:1.29-2", images.Image(images.Config{Cmd: []string{"sh"}}, images.Layer(files...)))
	mirrors := reg.MirrorConfig(t, "registry.k8s.io")
	toml := fmt.Sprintf("[registry]\nconfig_path = %q\n", mirrors)
	if host.driver == "systemd" {
		// kubelet names every pod's slice; the default parent, never used,
		// is a slice too, as the driver requires.
		toml += "[runtime]\ncgroup_driver = \"systemd\"\ncgroup_parent = \"hkkubelet.slice\"\n"
	}
	h := huskdtest.Start(t, huskdtest.Config(t, toml)...)
	if host.driver == "systemd" {
		h.DefaultCgroupParent = "" // a slice: systemd's, never made
	}

	start := time.Now()
	gates := ""
	if evented {
		gates = "featureGates:\n  EventedPLEG: true\n"
	}
	n := startNode(t, bin, h.Sock, host, gates)
	t.Logf("kubelet's healthz answered %s after its start", time.Since(start).Round(time.Millisecond))
	podName := "web-" + n.name
	manifestPath := n.writeManifest("web.yaml", fmt.Sprintf(manifest, int(scaled(time.Second).Seconds())))

	// Pull, RunPodSandbox, two CreateContainer+StartContainer, then exec
	// probes until Ready.
	p := n.waitPod(t, scaled(3*time.Minute), podName, "is Running and Ready with both containers ready", func(p *pod) bool {
		// Nothing explains a failed CRI call before the pod is up: fail
		// at the first rather than when kubelet's retries run out of time.
		if errs, _ := criErrors(n.log(), nil); len(errs) > 0 {
			t.Fatalf("kubelet logged failed CRI calls while starting the pod:\n%s", strings.Join(errs, "\n"))
		}
		if p.Status.Phase != "Running" || p.condition("Ready") != "True" || len(p.Status.ContainerStatuses) != 2 {
			return false
		}
		for _, c := range p.Status.ContainerStatuses {
			if !c.Ready || c.State.Running == nil {
				return false
			}
		}
		return true
	})
	uid := p.Metadata.UID
	if p.Status.PodIP == "" {
		t.Errorf("pod has no IP: kubelet took none from huskd's PodSandboxStatus")
	}
	killedAt := map[string]string{} // container ID → klog time the test killed it
	var outages [][2]string         // klog times from huskd's kill to kubelet's first call through the new one
	t.Logf("pod %s (uid %s) running and ready: %s", podName, uid, p.summary())
	if evented {
		waitEventStream(t, n, h, 1)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.RestartCount != 0 {
			t.Errorf("container %s restarted %d times before the test touched it: %s", c.Name, c.RestartCount, p.summary())
		}
	}

	t.Run("logs", func(t *testing.T) {
		for ctr, want := range map[string]string{"main": "main started", "sidecar": "sidecar started"} {
			n.waitLog(t, podName, ctr, false, want)
		}
	})

	t.Run("run", func(t *testing.T) {
		for _, c := range []struct{ ctr, cmd, want string }{
			// The emptyDir main wrote to, seen from the other container.
			{"sidecar", "cat /shared/hello", "hello from main"},
			{"sidecar", "hostname", "husk-web"},
			// kubelet's DNS choice (its resolvConf, no cluster DNS).
			{"main", "cat /etc/resolv.conf", "search husk.test"},
			// kubelet's /etc/hosts, with the pod IP huskd reported.
			{"main", "cat /etc/hosts", p.Status.PodIP + "\thusk-web"},
		} {
			out, err := n.run("default", podName, c.ctr, c.cmd)
			if err != nil || !strings.Contains(out, c.want) {
				t.Errorf("run %q in %s: %q, %v; want it to contain %q", c.cmd, c.ctr, out, err, c.want)
			}
		}
		// A failing command is an error of /run, with its output.
		if out, err := n.run("default", podName, "main", "cat /no/such/file"); err == nil || !strings.Contains(out, "No such file") {
			t.Errorf("run of a failing command: %q, %v; want an error that shows cat's message", out, err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		// /stats/summary: kubelet's CRI stats provider, from huskd's
		// ListContainerStats (containers) and the pod's cgroup.
		n.eventually(t, scaled(time.Minute), "/stats/summary has CPU, memory, rootfs and log figures of both containers", func() (bool, string) {
			s, err := n.podStats(podName)
			if err != nil {
				return false, err.Error()
			}
			if len(s.Containers) != 2 {
				return false, fmt.Sprintf("%d containers", len(s.Containers))
			}
			for _, c := range s.Containers {
				if c.CPU.UsageCoreNanoSeconds == 0 || c.Memory.WorkingSetBytes == 0 || c.Rootfs.CapacityBytes == 0 || c.Logs.UsedBytes == 0 {
					return false, fmt.Sprintf("%s: %+v", c.Name, c)
				}
			}
			return true, ""
		})
	})

	t.Run("probes", func(t *testing.T) {
		// Readiness may fail before main has written its file; liveness
		// never may.
		var counts map[string]int
		n.eventually(t, scaled(time.Minute), "main's probes have each succeeded", func() (bool, string) {
			var err error
			counts, err = n.probeCounts(podName, "main")
			if err != nil {
				return false, err.Error()
			}
			return counts["Liveness/successful"] > 0 && counts["Readiness/successful"] > 0, fmt.Sprint(counts)
		})
		if counts["Liveness/failed"] > 0 || counts["Liveness/unknown"] > 0 {
			t.Errorf("liveness probe of main failed: %v", counts)
		}
	})

	t.Run("cgroups", func(t *testing.T) {
		// kubelet took the driver from huskd's RuntimeConfig, and its
		// container manager runs with it on the host's cgroup version.
		log := n.log()
		for _, re := range []string{
			`"Using cgroup driver setting received from the CRI runtime" cgroupDriver="` + host.driver + `"`,
			`"Creating Container Manager object based on Node Config" .*"CgroupDriver":"` + host.driver + `".*"CgroupVersion":` + strconv.Itoa(host.version) + `\b`,
		} {
			if !regexp.MustCompile(re).MatchString(log) {
				t.Errorf("kubelet's log has no line that matches %s", re)
			}
		}
		// Each container is in the cgroup the driver makes under the
		// pod's cgroup that kubelet made (its QoS tree under its cgroup
		// root): huskd says so, and so does the kernel. With systemd, the
		// container's scope is systemd's, active, in that cgroup.
		for _, c := range p.Status.ContainerStatuses {
			id := c.runtimeID()
			pid, cg := containerInfo(t, h, id)
			want := host.containerCgroup(uid, id)
			if cg != want {
				t.Errorf("huskd puts %s in cgroup %q, want %s", c.Name, cg, want)
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			if err != nil || !regexp.MustCompile(`(?m):`+regexp.QuoteMeta(want)+`$`).Match(b) {
				t.Errorf("%s (pid %d) is not in %s: /proc/%d/cgroup: %s %v", c.Name, pid, want, pid, b, err)
			}
			if host.driver == "systemd" {
				scope := "cri-husk-" + id + ".scope"
				for prop, v := range map[string]string{"ActiveState": "active", "ControlGroup": want} {
					out, err := exec.Command("systemctl", "show", "-P", prop, scope).Output()
					if got := strings.TrimSpace(string(out)); err != nil || got != v {
						t.Errorf("systemd's %s of %s: %q, %v; want %s", prop, scope, got, err, v)
					}
				}
			}
		}
	})

	// main killed from outside: kubelet restarts it, and only it.
	restartAfterKill := func(t *testing.T, throughEvents bool) {
		cur := n.waitPod(t, scaled(time.Minute), podName, "is Ready", func(p *pod) bool { return p.condition("Ready") == "True" })
		old, oldSidecar := cur.container("main"), cur.container("sidecar")
		want := old.RestartCount + 1
		pid, _ := containerInfo(t, h, old.runtimeID())
		var eventsBefore float64
		if throughEvents {
			eventsBefore = kubeletMetric(t, n, eventedEvents)
		}
		killedAt[old.runtimeID()] = klogNow()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("killing main (pid %d): %v", pid, err)
		}
		p := n.waitPod(t, scaled(2*time.Minute), podName, "has restarted main after it was killed, and is Ready again", func(p *pod) bool {
			c := p.container("main")
			return c != nil && c.RestartCount >= want && c.State.Running != nil && c.Ready &&
				c.ContainerID != old.ContainerID && p.condition("Ready") == "True"
		})
		c := p.container("main")
		if c.RestartCount != want {
			t.Errorf("main restarted %d times, want %d: %s", c.RestartCount, want, p.summary())
		}
		if lt := c.LastState.Terminated; lt == nil || lt.ExitCode != 137 {
			t.Errorf("main's last state: %+v, want terminated with exit code 137 (SIGKILL): %s", lt, p.summary())
		}
		if s := p.container("sidecar"); s == nil || s.RestartCount != 0 || s.ContainerID != oldSidecar.ContainerID {
			t.Errorf("sidecar was restarted too: %s", p.summary())
		}
		cctx, cancel := callCtx()
		defer cancel()
		st, err := h.Runtime.ContainerStatus(cctx, c.runtimeID(), false)
		if err != nil || st.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING || st.GetStatus().GetMetadata().GetAttempt() != uint32(want) {
			t.Errorf("huskd's status of the new main %s: %v, %v; want running, attempt %d", c.runtimeID(), st.GetStatus(), err, want)
		}
		if huskdtest.Alive(pid) {
			t.Errorf("the killed process %d is still alive", pid)
		}
		if throughEvents {
			// main's stop, its successor's creation and start: through the
			// stream.
			if got := kubeletMetric(t, n, eventedEvents); got < eventsBefore+3 {
				t.Errorf("kubelet received %v container events from huskd's stream over main's restart, want at least 3", got-eventsBefore)
			}
		}
		// The killed instance's log is still there, and the new one logs anew.
		n.waitLog(t, podName, "main", true, "main started")
		n.waitLog(t, podName, "main", false, "main started")
	}
	if evented {
		// Before huskd's restart, which ends kubelet's use of the stream
		// (below): the kill reaches kubelet as a STOPPED event.
		t.Run("restart after kill through events", func(t *testing.T) { restartAfterKill(t, true) })
	}

	huskdKilledAt := ""
	t.Run("huskd restart", func(t *testing.T) {
		// huskd killed and started again, as a crash or an upgrade would:
		// kubelet must find the same containers running, and restart none.
		before := n.waitPod(t, scaled(time.Minute), podName, "is Ready", func(p *pod) bool { return p.condition("Ready") == "True" })
		down := klogNow()
		huskdKilledAt = down
		h.Kill()
		h.Launch()
		// kubelet's relist (every second) has gone through the new huskd
		// once its gRPC connection is back.
		up := klogNow()
		n.eventually(t, scaled(time.Minute), "kubelet has listed containers through the new huskd", func() (bool, string) {
			last := lastCall(h.Log(), "ListContainers")
			return last > up, "its last ListContainers was at " + last
		})
		outages = append(outages, [2]string{down, klogNow()})
		if evented {
			// The stream broke with huskd. kubelet v1.37.2 tries again 5
			// times at once, without a backoff, and gives the stream up for
			// good when all find no huskd listening (pkg/kubelet/pleg/
			// evented.go): its generic PLEG relists every second anyway.
			n.eventually(t, scaled(time.Minute), "kubelet has given up the stream of the killed huskd", func() (bool, string) {
				lines := grepLines(n.log(), "Evented PLEG: disabling")
				return lines != "" && klogTime(lines) >= down, lines
			})
		}
		after := n.waitPod(t, scaled(time.Minute), podName, "is Ready after huskd's restart", func(p *pod) bool { return p.condition("Ready") == "True" })
		for _, c := range before.Status.ContainerStatuses {
			a := after.container(c.Name)
			if a == nil || a.ContainerID != c.ContainerID || a.RestartCount != c.RestartCount || a.State.Running == nil {
				t.Errorf("container %s changed across huskd's restart: before %s; after %s", c.Name, before.summary(), after.summary())
			}
		}
	})

	t.Run("restart after kill", func(t *testing.T) { restartAfterKill(t, false) })

	t.Run("delete manifest", func(t *testing.T) {
		if err := os.Remove(manifestPath); err != nil {
			t.Fatal(err)
		}
		// kubelet stops the pod at once; its containers and sandbox go at the
		// next garbage collection (once a minute), its cgroup at the next
		// housekeeping.
		byUID := map[string]string{"io.kubernetes.pod.uid": uid}
		n.eventually(t, scaled(3*time.Minute), "the pod is gone from kubelet, from huskd and from the cgroups", func() (bool, string) {
			pods, err := n.pods()
			if err != nil {
				return false, err.Error()
			}
			for _, p := range pods {
				if p.Metadata.UID == uid {
					return false, "kubelet still has it: " + p.summary()
				}
			}
			c, cancel := callCtx()
			defer cancel()
			sbs, err := h.Runtime.ListPodSandbox(c, &runtime.PodSandboxFilter{LabelSelector: byUID})
			if err != nil {
				return false, "ListPodSandbox: " + err.Error()
			}
			ctrs, err := h.Runtime.ListContainers(c, &runtime.ContainerFilter{LabelSelector: byUID})
			if err != nil {
				return false, "ListContainers: " + err.Error()
			}
			if len(sbs) > 0 || len(ctrs) > 0 {
				var states []string
				for _, s := range sbs {
					states = append(states, fmt.Sprintf("sandbox %.12s %s", s.Id, s.State))
				}
				for _, c := range ctrs {
					states = append(states, fmt.Sprintf("container %s %.12s %s", c.GetMetadata().GetName(), c.Id, c.State))
				}
				return false, "huskd still has " + strings.Join(states, ", ")
			}
			if dirs := n.podCgroupDirs(uid); len(dirs) > 0 {
				return false, "pod cgroup still there: " + strings.Join(dirs, " ")
			}
			return true, ""
		})
	})

	if evented {
		// kubelet gave the stream up only when huskd was killed.
		for _, l := range strings.Split(grepLines(n.log(), "Evented PLEG: disabling"), "\n") {
			if l != "" && (huskdKilledAt == "" || klogTime(l) < huskdKilledAt) {
				t.Errorf("kubelet stopped using huskd's container events before huskd was killed (%s):\n%s", huskdKilledAt, l)
			}
		}
		t.Logf("kubelet's Evented PLEG: %v streams opened, %v failed, %v events received",
			kubeletMetric(t, n, eventedConnections), kubeletMetric(t, n, eventedErrors), kubeletMetric(t, n, eventedEvents))
	}

	// Checked after all kubelet did, kubelet still running.
	errs, known := criErrors(n.log(), expectedCRIError(n.log(), h.Log(), killedAt, outages))
	t.Logf("kubelet logged %d failed CRI calls that its timing explains:\n%s", len(known), strings.Join(known, "\n"))
	if len(errs) > 0 {
		t.Errorf("kubelet logged %d failed CRI calls:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// waitEventStream waits until kubelet has opened its Evented PLEG stream
// the nth time, and huskd has it as its one subscriber.
func waitEventStream(t *testing.T, n *node, h *huskdtest.Huskd, nth float64) {
	t.Helper()
	n.eventually(t, scaled(time.Minute), fmt.Sprintf("kubelet has opened huskd's container event stream %v times and huskd has it", nth), func() (bool, string) {
		got, err := n.metric(eventedConnections)
		if err != nil {
			return false, err.Error()
		}
		subs, err := eventSubscribers(h)
		if err != nil {
			return false, err.Error()
		}
		return got >= nth && subs == 1, fmt.Sprintf("%v streams opened, huskd has %d subscribers", got, subs)
	})
}

func kubeletMetric(t *testing.T, n *node, name string) float64 {
	t.Helper()
	v, err := n.metric(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventSubscribers is the number of GetContainerEvents streams huskd
// serves, from its verbose Status.
func eventSubscribers(h *huskdtest.Huskd) (int, error) {
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := h.Runtime.Status(ctx, true)
	if err != nil {
		return 0, err
	}
	var st struct {
		Subscribers int `json:"subscribers"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["containerEvents"]), &st); err != nil {
		return 0, fmt.Errorf("huskd's containerEvents %q: %w", resp.GetInfo()["containerEvents"], err)
	}
	return st.Subscribers, nil
}

func grepLines(log, s string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// containerInfo is a container's PID and cgroup (its cgroupfs path) from
// huskd's verbose ContainerStatus.
func containerInfo(t *testing.T, h *huskdtest.Huskd, id string) (pid int, cgroupPath string) {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := h.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	var info struct {
		Pid        int    `json:"pid"`
		CgroupPath string `json:"cgroupPath"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("pid of %s from huskd's verbose status: %v (%q)", id, err, resp.GetInfo()["info"])
	}
	return info.Pid, info.CgroupPath
}

// expectedCRIError returns the filter of the failed CRI calls that
// kubelet's own timing makes unavoidable with any runtime (containerd gives
// the same), given kubelet's and huskd's logs, when the test killed which
// container and when huskd was down (klog times):
//   - code = Unavailable while huskd was down or recovering, until kubelet's
//     gRPC connection had come back (it redials with a backoff).
//   - code = Canceled: kubelet cancelled its own call (a pod worker whose
//     pod was removed meanwhile); the runtime did not fail it.
//   - code = NotFound for a container huskd had removed before the call:
//     kubelet deletes a removed pod's dead containers once per PLEG event,
//     so its second round finds them gone.
//   - ExecSync (a probe) in a container that had begun to die: killed by
//     the test, or being stopped by kubelet ("Killing container" logged
//     first). A probe racing with the end of its container fails whatever
//     the runtime; the probes subtest checks that none failed before.
//
// Everything else is a failure of huskd, or a disagreement with kubelet.
func expectedCRIError(kubeletLog, huskdLog string, killedAt map[string]string, outages [][2]string) func(string) bool {
	removedAt := firstTimes(huskdLog, `"Container removed"`)
	stoppingAt := firstTimes(kubeletLog, `"Killing container with a grace period"`)
	return func(line string) bool {
		at, id := klogTime(line), containerIDOf(line)
		before := func(times map[string]string) bool { t, ok := times[id]; return ok && id != "" && t <= at }
		switch {
		case strings.Contains(line, "code = Unavailable"):
			return slices.ContainsFunc(outages, func(o [2]string) bool { return o[0] <= at && at <= o[1] })
		case strings.Contains(line, "code = Canceled"):
			return true
		case strings.Contains(line, "code = NotFound"):
			return before(removedAt)
		case strings.Contains(line, `"ExecSync cmd from runtime service failed"`):
			return before(killedAt) || before(stoppingAt)
		}
		return false
	}
}

// lastCall is the klog time of huskd's last successful call of method
// ("" if none).
func lastCall(huskdLog, method string) string {
	last := ""
	for _, line := range strings.Split(huskdLog, "\n") {
		if strings.Contains(line, `"CRI call" method="`+method+`"`) {
			last = klogTime(line)
		}
	}
	return last
}

// firstTimes maps each container ID to the klog time of the first line of
// log that contains marker and names it.
func firstTimes(log, marker string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		if id := containerIDOf(line); id != "" {
			if _, ok := out[id]; !ok {
				out[id] = klogTime(line)
			}
		}
	}
	return out
}

// containerIDOf is the value of a line's containerID key, without the
// "husk://" kubelet puts before it in some lines.
func containerIDOf(line string) string {
	_, rest, ok := strings.Cut(line, `containerID="`)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, `"`)
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	return id
}

// klogTime is the time of a klog line ("MMDD hh:mm:ss.uuuuuu"): within a
// test, its order is the order of the strings. Both processes log local
// time, as klogNow does.
func klogTime(line string) string {
	if len(line) < 21 {
		return ""
	}
	return line[1:21]
}

// callCtx bounds one CRI call of the test.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), scaled(30*time.Second))
}

func klogNow() string { return time.Now().Format("0102 15:04:05.000000") }
