package kubelet

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/benchtable"
	"github.com/huskrt/husk/conformance/containerdtest"
	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// benchManifest is one pod of the node benchmark (%[1]s: its name): a
// container serving HTTP (busybox's httpd) with an exec readiness probe
// every 10 s, and one that sleeps. httpd serves /etc, where the file the
// probe reads (kubelet's /etc/hostname) is there from the container's
// start: the first probe, which kubelet runs as soon as it sees the
// container running, passes whatever the shell's progress. Both end at
// SIGTERM (the shell traps it; the namespace's other processes die with
// it), so that deleting the pods measures the runtime, not a grace period.
const benchManifest = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: default
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: ` + image + `
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /etc & wait"]
    readinessProbe:
      exec:
        command: ["cat", "/etc/hostname"]
      periodSeconds: 10
  - name: sleeper
    image: ` + image + `
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
`

// probePeriod is the readiness probe's period in benchManifest.
const probePeriod = 10 * time.Second

// nodeFigures is what BenchmarkNode measures of one runtime under kubelet.
type nodeFigures struct {
	allReady      time.Duration // manifests written → every pod Ready in kubelet's /pods
	readyP50      time.Duration // manifest → the pod first seen Ready, per pod
	readyP99      time.Duration
	kubeletP50    float64 // s, kubelet's own histogram, interpolated
	kubeletP99    float64
	kubeletMetric string  // the histogram read
	cpuPerMin     float64 // runtime CPU seconds per minute at steady state
	kubeletCPU    float64 // kubelet's own, for reference
	rssMiB        float64 // runtime's processes (daemon, shims)
	pssMiB        float64
	pausePssMiB   float64       // the pods' pause processes
	procs         int           // runtime processes measured
	allStopped    time.Duration // manifests removed → no ready sandbox, no running container
	allRemoved    time.Duration // → the runtime lists no sandbox at all
}

// nodeRuntime is the runtime under kubelet: its CRI, and how to find its
// processes.
type nodeRuntime struct {
	sock   string
	rt     internalapi.RuntimeService
	images internalapi.ImageManagerService
	// procs are the runtime's long-lived processes: its daemon and shims.
	procs func() []int
}

// BenchmarkNode is issue 19's full node: kubelet v1.37.2, standalone with
// static pods, against each runtime in turn (husk, husk with kubelet's
// EventedPLEG gate, containerd 2.4 with runc 1.5, Debian's containerd 1.6
// when installed); it prints one table, husk/containerd 2.4 with the
// issue's targets, and saves it as JSON under bench-results/ (node-*.json).
// `make bench-node` runs it; HUSK_BENCH_NODE_PODS (110) and
// HUSK_BENCH_NODE_STEADY (5m) change its size.
//
// For each runtime: N manifests written at once; the time until kubelet's
// /pods has every pod Ready with both containers ready (polled every
// 200 ms: that is its resolution), and each pod's own manifest → Ready
// time; kubelet's pod startup histogram, p50 and p99 interpolated
// linearly within its buckets (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20 … s) as
// Prometheus' histogram_quantile does. kubelet v1.37.2 records
// pod_start_sli_duration_seconds only for pods seen on an API server watch
// (pkg/kubelet/config: "ignore static pods"), so with static pods the one
// it fills is pod_start_duration_seconds (first seen → running, without
// readiness: its first-sync samples left out, see startHistogram); the
// table names the one it read. Then the runtime's CPU and
// memory at steady state (see cpuTicks), and the time to delete them all.
func BenchmarkNode(b *testing.B) {
	if os.Getenv("HUSK_BENCH_NODE") == "" {
		b.Skip("HUSK_BENCH_NODE is not set: `make bench-node` runs this benchmark (minutes per runtime)")
	}
	bin := kubeletBinary(b)
	bb, err := images.BusyboxPath()
	if err != nil {
		b.Skip(err)
	}
	huskBin := huskdtest.Bin(b)
	pods := envInt(b, "HUSK_BENCH_NODE_PODS", 110)
	steady := envDuration(b, "HUSK_BENCH_NODE_STEADY", 5*time.Minute)

	reg := images.StartRegistry(b)
	files, err := images.BusyboxFiles(bb)
	if err != nil {
		b.Fatal(err)
	}
	reg.Push(b, "e2e-test-images/busybox:1.29-2", images.Image(images.Config{Cmd: []string{"sh"}}, images.Layer(files...)))
	// containerd's sandbox image, built from husk's own pause.
	pause, err := os.ReadFile(filepath.Join(huskBin, "husk-pause"))
	if err != nil {
		b.Fatal(err)
	}
	reg.Push(b, "pause:3.9", images.Image(images.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		images.Layer(images.File{Name: "pause", Body: pause, Mode: 0o755})))
	mirrors := reg.MirrorConfig(b, "registry.k8s.io")

	figures := map[string]*nodeFigures{}
	var names []string
	measure := func(name, gates string, start func(b *testing.B, h host) nodeRuntime) {
		b.Run(name, func(b *testing.B) {
			h := prepareHostWith(b, "", true)
			r := start(b, h)
			f := runNode(b, bin, h, r, gates, pods, steady)
			figures[name] = f
			names = append(names, name)
		})
	}
	husk := func(b *testing.B, h host) nodeRuntime {
		toml := fmt.Sprintf("[registry]\nconfig_path = %q\n", mirrors)
		if h.driver == "systemd" {
			toml += "[runtime]\ncgroup_driver = \"systemd\"\ncgroup_parent = \"hkkubelet.slice\"\n"
		}
		// At the verbosity huskd runs with in production.
		hd := huskdtest.Start(b, append(huskdtest.Config(b, toml), "-v", "0")...)
		if h.driver == "systemd" {
			hd.DefaultCgroupParent = ""
		}
		return nodeRuntime{sock: hd.Sock, rt: hd.Runtime, images: hd.Images, procs: func() []int {
			return runtimeProcs(hd.PID(), func(comm, cmdline string) bool {
				return comm == "husk-shim" && strings.Contains(cmdline, hd.State+"/")
			})
		}}
	}
	measure("husk", "", husk)
	measure("husk-evented", "featureGates:\n  EventedPLEG: true\n", husk)
	for _, rel := range containerdtest.Releases {
		if _, err := containerdtest.Find(rel); err != nil {
			b.Logf("%s left out: %v", rel, err)
			continue
		}
		measure(string(rel), "", func(b *testing.B, h host) nodeRuntime {
			c := containerdtest.Start(b, containerdtest.Options{Release: rel, HostsDir: mirrors, CNIConfDir: containerdtest.Network(b)})
			return nodeRuntime{sock: c.Sock, rt: c.Runtime, images: c.Images, procs: func() []int {
				return runtimeProcs(c.PID(), func(comm, cmdline string) bool {
					return strings.HasPrefix(comm, "containerd-shim") && strings.Contains(cmdline, c.Sock)
				})
			}}
		})
	}
	if b.Failed() || figures["husk"] == nil {
		return
	}

	tab := benchtable.Table{OneValue: true}
	for _, n := range names {
		if n != "husk" && n != "husk-evented" {
			tab.Peers = append(tab.Peers, n)
		}
	}
	if len(tab.Peers) == 0 {
		// No containerd: an empty column, so that no ratio is against
		// husk-evented.
		tab.Peers = append(tab.Peers, string(containerdtest.V2))
	}
	if figures["husk-evented"] != nil {
		// A column of its own, after the peers the ratio is against.
		tab.Peers = append(tab.Peers, "husk-evented")
	}
	row := func(what, unit string, g benchtable.Goal, v func(*nodeFigures) float64) {
		samples := map[string][]float64{}
		for n, f := range figures {
			samples[n] = []float64{v(f)}
		}
		tab.Add(what, unit, g, samples)
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	hf := figures["husk"]
	row(fmt.Sprintf("all %d pods Ready (kubelet's /pods)", pods), "s", benchtable.Goal{Ratio: 0.50}, func(f *nodeFigures) float64 { return secs(f.allReady) })
	row("per pod, manifest to Ready: p50", "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return secs(f.readyP50) })
	row("per pod, manifest to Ready: p99", "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return secs(f.readyP99) })
	short := strings.TrimPrefix(strings.TrimSuffix(hf.kubeletMetric, "_seconds"), "kubelet_")
	row("kubelet "+short+" p50 (interp.)", "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return f.kubeletP50 })
	row("kubelet "+short+" p99 (interp.)", "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return f.kubeletP99 })
	row(fmt.Sprintf("runtime CPU at steady state, %s", steady), "s/min", benchtable.Goal{Ratio: 0.30}, func(f *nodeFigures) float64 { return f.cpuPerMin })
	row("  kubelet's own CPU, for reference", "s/min", benchtable.Goal{}, func(f *nodeFigures) float64 { return f.kubeletCPU })
	row("runtime memory: daemon+shims PSS", "MiB", benchtable.Goal{Ratio: 0.30}, func(f *nodeFigures) float64 { return f.pssMiB })
	row("runtime memory: daemon+shims RSS", "MiB", benchtable.Goal{}, func(f *nodeFigures) float64 { return f.rssMiB })
	row("  the pods' pause processes, PSS", "MiB", benchtable.Goal{}, func(f *nodeFigures) float64 { return f.pausePssMiB })
	row("  runtime processes measured", "n", benchtable.Goal{}, func(f *nodeFigures) float64 { return float64(f.procs) })
	row(fmt.Sprintf("delete all %d: none running", pods), "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return secs(f.allStopped) })
	row(fmt.Sprintf("delete all %d: none left (kubelet's GC)", pods), "s", benchtable.Goal{}, func(f *nodeFigures) float64 { return secs(f.allRemoved) })

	against := tab.Peers[0]
	fmt.Printf("\nkubelet v1.37.2 standalone, %d static pods of two containers, steady state %s; ratio = husk/%s (goal: met or not, x = target/ratio); one reading each, noisy on a shared machine\n%s",
		pods, steady, against, tab.String())
	if ef := figures["husk-evented"]; ef != nil {
		fmt.Printf("kubelet's EventedPLEG on husk: all Ready %.2f s → %.2f s (%+.0f %%); per pod p50 %.2f → %.2f s, p99 %.2f → %.2f s; kubelet %s p50 %.2f → %.2f s, p99 %.2f → %.2f s; runtime CPU %.2f → %.2f s/min, kubelet's %.2f → %.2f\n",
			secs(hf.allReady), secs(ef.allReady), 100*(secs(ef.allReady)/secs(hf.allReady)-1),
			secs(hf.readyP50), secs(ef.readyP50), secs(hf.readyP99), secs(ef.readyP99),
			short, hf.kubeletP50, ef.kubeletP50, hf.kubeletP99, ef.kubeletP99,
			hf.cpuPerMin, ef.cpuPerMin, hf.kubeletCPU, ef.kubeletCPU)
	}
	path, err := tab.Write("node-", map[string]any{"pods": pods, "steady_seconds": steady.Seconds(), "kubelet_histogram": hf.kubeletMetric})
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("results written to %s\n", path)
	b.ReportMetric(0, "ns/op")
}

// runNode starts kubelet against r, runs the pods, measures, and deletes
// them.
func runNode(b *testing.B, bin string, h host, r nodeRuntime, gates string, pods int, steady time.Duration) *nodeFigures {
	ctx := context.Background()
	// The images are pulled before (containerd's sandbox image too; husk
	// has its pause built in): the times are of starting pods, not of a
	// pull kubelet serializes.
	for _, ref := range []string{image, "registry.k8s.io/pause:3.9"} {
		if _, err := r.images.PullImage(ctx, &runtime.ImageSpec{Image: ref}, nil, nil); err != nil {
			b.Fatalf("pulling %s: %v", ref, err)
		}
	}
	launched := time.Now()
	n := startNodeWith(b, bin, r.sock, h, gates, true)
	if gates != "" {
		opened := false
		for deadline := time.Now().Add(time.Minute); !opened && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			v, err := n.metric(eventedConnections)
			opened = err == nil && v >= 1
		}
		b.Logf("kubelet's EventedPLEG stream opened before the pods: %v", opened)
	}
	// A probe worker that kubelet starts within a probe period of its own
	// start first sleeps a random part of that period (pkg/kubelet/prober/
	// worker.go), which would add up to 10 s to each pod's readiness: the
	// pods come after.
	time.Sleep(time.Until(launched.Add(probePeriod + time.Second)))
	f := &nodeFigures{}

	// Every manifest is written to a scratch directory, then each renamed
	// into the static pod directory: kubelet reads them as one batch.
	names := make([]string, pods)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%03d", i)
		if err := os.WriteFile(filepath.Join(n.dir, names[i]+".yaml"), []byte(fmt.Sprintf(benchManifest, names[i])), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for _, name := range names {
		if err := os.Rename(filepath.Join(n.dir, name+".yaml"), filepath.Join(n.manifests, name+".yaml")); err != nil {
			b.Fatal(err)
		}
	}
	readyAt := map[string]time.Duration{}
	n.eventually(b, time.Duration(pods)*5*time.Second+2*time.Minute, fmt.Sprintf("all %d pods are Ready", pods), func() (bool, string) {
		list, err := n.pods()
		if err != nil {
			return false, err.Error()
		}
		now := time.Since(start)
		for i := range list {
			p := &list[i]
			if _, seen := readyAt[p.Metadata.Name]; !seen && podReady(p) {
				readyAt[p.Metadata.Name] = now
			}
		}
		return len(readyAt) >= pods, fmt.Sprintf("%d of %d Ready", len(readyAt), pods)
	})
	f.allReady = time.Since(start)
	var perPod []float64
	for _, d := range readyAt {
		perPod = append(perPod, d.Seconds())
	}
	f.readyP50 = time.Duration(benchtable.Quantile(perPod, 0.5) * float64(time.Second))
	f.readyP99 = time.Duration(benchtable.Quantile(perPod, 0.99) * float64(time.Second))
	f.kubeletMetric, f.kubeletP50, f.kubeletP99 = startHistogram(b, n, pods)
	b.Logf("%d pods Ready after %s; kubelet's %s p50 %.2f s p99 %.2f s", pods, f.allReady.Round(time.Millisecond), f.kubeletMetric, f.kubeletP50, f.kubeletP99)

	// Steady state: one probe period for the start's tail to end, then
	// the window.
	time.Sleep(probePeriod)
	procs := r.procs()
	before, kubeletBefore := cpuTicks(procs), cpuTicks([]int{n.cmd.Process.Pid})
	t0 := time.Now()
	time.Sleep(steady)
	window := time.Since(t0)
	after, kubeletAfter := cpuTicks(procs), cpuTicks([]int{n.cmd.Process.Pid})
	ticks, gone := cpuDelta(before, after)
	if gone > 0 {
		b.Logf("%d of the runtime's %d processes ended during the window: their last CPU is not counted", gone, len(procs))
	}
	kticks, _ := cpuDelta(kubeletBefore, kubeletAfter)
	f.cpuPerMin = ticks / clockTicks / window.Minutes()
	f.kubeletCPU = kticks / clockTicks / window.Minutes()
	f.procs = len(procs)
	now := r.procs()
	if started := len(now) - len(procs) + gone; started > 0 {
		b.Logf("%d runtime processes started during the window: their CPU is not counted", started)
	}
	for _, pid := range now {
		rss, err1 := huskdtest.RssKiB(pid)
		pss, err2 := huskdtest.PssKiB(pid)
		if err1 == nil && err2 == nil {
			f.rssMiB += float64(rss) / 1024
			f.pssMiB += float64(pss) / 1024
		}
	}
	for _, pid := range pauses(procs) {
		if pss, err := huskdtest.PssKiB(pid); err == nil {
			f.pausePssMiB += float64(pss) / 1024
		}
	}
	b.Logf("steady state over %s: runtime %.2f CPU s/min (%d processes), kubelet %.2f; PSS %.1f MiB, RSS %.1f MiB",
		window.Round(time.Second), f.cpuPerMin, f.procs, f.kubeletCPU, f.pssMiB, f.rssMiB)

	// Delete: every manifest removed at once. kubelet stops the pods at
	// once, and removes their sandboxes at its next garbage collection
	// (once a minute).
	start = time.Now()
	for _, name := range names {
		if err := os.Remove(filepath.Join(n.manifests, name+".yaml")); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Duration(pods)*2*time.Second + 3*time.Minute
	n.eventually(b, deadline, "the runtime has no ready sandbox and no running container", func() (bool, string) {
		ready, _, running, err := runtimeCounts(r.rt)
		if err != nil {
			return false, err.Error()
		}
		return ready == 0 && running == 0, fmt.Sprintf("%d ready sandboxes, %d running containers", ready, running)
	})
	f.allStopped = time.Since(start)
	n.eventually(b, deadline, "the runtime has no sandbox left", func() (bool, string) {
		_, total, _, err := runtimeCounts(r.rt)
		if err != nil {
			return false, err.Error()
		}
		return total == 0, fmt.Sprintf("%d sandboxes", total)
	})
	f.allRemoved = time.Since(start)
	b.Logf("deleted: none running after %s, none left after %s", f.allStopped.Round(time.Millisecond), f.allRemoved.Round(time.Millisecond))
	return f
}

func podReady(p *pod) bool {
	if p.condition("Ready") != "True" || len(p.Status.ContainerStatuses) != 2 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready || c.State.Running == nil {
			return false
		}
	}
	return true
}

// runtimeCounts is what the runtime itself lists: ready sandboxes, all
// sandboxes, running containers.
func runtimeCounts(rt internalapi.RuntimeService) (ready, total, running int, err error) {
	ctx, cancel := callCtx()
	defer cancel()
	sbs, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, s := range sbs {
		if s.State == runtime.PodSandboxState_SANDBOX_READY {
			ready++
		}
	}
	ctrs, err := rt.ListContainers(ctx, &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return 0, 0, 0, err
	}
	return ready, len(sbs), len(ctrs), nil
}

// startHistogram reads kubelet's pod startup histogram and its p50 and
// p99 over the pods: pod_start_sli_duration_seconds when kubelet recorded
// any (pods of an API server), else pod_start_duration_seconds (static
// pods). kubelet v1.37.2 observes the latter twice a pod: at the pod's
// first sync, which finds no status yet (`!ok ||` in SyncPod: ~0 s, the
// pod not started), and when it is running; the quantiles are then taken
// over the upper pods samples, the first-sync ones taken to be the lowest
// (each pod's own is below its real one).
func startHistogram(b *testing.B, n *node, pods int) (name string, p50, p99 float64) {
	body, err := n.do("GET", "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"kubelet_pod_start_sli_duration_seconds", "kubelet_pod_start_duration_seconds"} {
		buckets := histogramBuckets(string(body), name)
		if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
			continue
		}
		count := buckets[len(buckets)-1].count
		skip := max(count-float64(pods), 0)
		if skip > 0 {
			b.Logf("kubelet's %s has %v samples for %d pods: the lowest %v left out", name, count, pods, skip)
		}
		return name, histogramRank(skip+0.5*(count-skip), buckets), histogramRank(skip+0.99*(count-skip), buckets)
	}
	b.Fatalf("kubelet's /metrics has no pod startup histogram with samples")
	return "", 0, 0
}

// bucket is one cumulative bucket of a Prometheus histogram: count samples
// at most le.
type bucket struct{ le, count float64 }

// histogramBuckets parses the buckets of histogram name (summed over its
// label sets, which kubelet's have none of) from the text exposition
// format, in order of le, +Inf last.
func histogramBuckets(metrics, name string) []bucket {
	sums := map[float64]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `le="`)
		leText, rest, ok := strings.Cut(rest, `"`)
		f := strings.Fields(rest)
		if !ok || len(f) < 1 {
			continue
		}
		le, err1 := strconv.ParseFloat(leText, 64) // "+Inf" parses
		v, err2 := strconv.ParseFloat(f[len(f)-1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		sums[le] += v
	}
	out := make([]bucket, 0, len(sums))
	for le, c := range sums {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// histogramQuantile is Prometheus' histogram_quantile: the q-quantile
// interpolated linearly within the bucket it falls in (from 0 for the
// first); in the +Inf bucket, the highest finite bound. Its error is up
// to a bucket's width.
func histogramQuantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 {
		return math.NaN()
	}
	return histogramRank(q*buckets[len(buckets)-1].count, buckets)
}

// histogramRank is the value of the sample of that rank (from 0 to the
// count), interpolated as histogramQuantile does.
func histogramRank(rank float64, buckets []bucket) float64 {
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return math.NaN()
	}
	lower, below := 0.0, 0.0
	for i, bk := range buckets {
		if bk.count >= rank && bk.count > below {
			if math.IsInf(bk.le, 1) {
				if i == 0 {
					return math.NaN()
				}
				return buckets[i-1].le
			}
			return lower + (bk.le-lower)*(rank-below)/(bk.count-below)
		}
		lower, below = bk.le, bk.count
	}
	return lower
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go runs on.
const clockTicks = 100

// procTime is a process's CPU in clock ticks, with its start time to tell
// it from a later process with the same PID.
type procTime struct{ start, ticks uint64 }

// cpuTicks reads utime+stime+cutime+cstime of each process.
//
// The method: the runtime's long-lived processes (its daemon and its
// shims) are listed once at the start of the window, and read at its
// start and end. A process's own time (utime, stime) and the time of the
// children it has waited for (cutime, cstime) together cover what it
// starts and reaps: the husk-runc or runc each exec probe starts, the
// probe's own process (husk-shim and containerd-shim are subreapers),
// the CNI plugins a daemon runs. Blind spots: a child still running, or
// exited and not yet reaped, at either end of the window (its time lands
// in the window it is reaped in: at steady state a probe's lifetime
// against a window of minutes); a process that outlives its parent and is
// reaped by someone else (init, kubelet); a runtime process started during
// the window (none at steady state: the count is logged) or ended during
// it (its last ticks are lost: logged); work done for the runtime by the
// kernel outside a process's context (kworkers: cgroup, overlayfs, netns
// teardown) and by systemd. The containers' own processes (pause, httpd,
// sleep) are not the runtime's and are not counted, except the probe
// command (cat) that the shim reaps, for both runtimes alike.
func cpuTicks(pids []int) map[int]procTime {
	out := map[int]procTime{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		// Fields after the command, from state (field 3): utime is field
		// 14, stime 15, cutime 16, cstime 17, starttime 22.
		f := strings.Fields(s[end+1:])
		if len(f) < 20 {
			continue
		}
		var t procTime
		for _, i := range []int{14, 15, 16, 17} {
			v, _ := strconv.ParseInt(f[i-3], 10, 64)
			t.ticks += uint64(max(v, 0))
		}
		t.start, _ = strconv.ParseUint(f[22-3], 10, 64)
		out[pid] = t
	}
	return out
}

// cpuDelta is the ticks the processes of before used until after, and how
// many of them were gone (or replaced) by then.
func cpuDelta(before, after map[int]procTime) (ticks float64, gone int) {
	for pid, b := range before {
		a, ok := after[pid]
		if !ok || a.start != b.start {
			gone++
			continue
		}
		ticks += float64(a.ticks - b.ticks)
	}
	return ticks, gone
}

// runtimeProcs is the daemon and the processes isShim picks by their
// command name and command line (NUL-separated).
func runtimeProcs(daemon int, isShim func(comm, cmdline string) bool) []int {
	out := []int{daemon}
	for _, pid := range allPIDs() {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid != daemon && isShim(strings.TrimSpace(string(comm)), string(cmdline)) {
			out = append(out, pid)
		}
	}
	return out
}

// pauses are the pause processes whose parent is one of procs.
func pauses(procs []int) []int {
	parents := map[int]bool{}
	for _, p := range procs {
		parents[p] = true
	}
	var out []int
	for _, pid := range allPIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if s[open+1:end] == "pause" && parents[ppid] {
			out = append(out, pid)
		}
	}
	return out
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

func envDuration(b *testing.B, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a duration such as 5m or 30s", key, v)
	}
	return d
}
