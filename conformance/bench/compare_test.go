package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/benchtable"
	"github.com/huskrt/husk/conformance/huskdtest"
)

func ms(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v.Microseconds()) / 1000
	}
	return out
}

// msOf is every runtime's samples of what, in milliseconds, by name.
func msOf(rts []*runtimeUnderTest, what string) map[string][]float64 {
	out := map[string][]float64{}
	for _, r := range rts {
		out[r.name] = ms(r.samples[what])
	}
	return out
}

// Scale of the node part: 100 pods of two containers (with the exec pod:
// 101 pods, 201 containers) for the list calls, issue 19's "200
// containers"; then more, up to kubelet's default of 110 pods a node, for
// the memory figures.
const (
	listPods = 100
	nodePods = 110
)

// BenchmarkCompare runs the workloads of issues 8 and 19 against huskd and
// each containerd release installed (2.4 with runc 1.5, Debian's 1.6),
// alternately, prints one table (median and p90 of each, ratio
// husk/containerd 2.4 of the medians, and whether issue 19's targets are
// met) and writes it as JSON.
func BenchmarkCompare(b *testing.B) {
	rts := runtimes(b, true)
	if len(rts) < 2 {
		b.Skip("no containerd is installed: `make bench` installs them")
	}
	ctx := context.Background()
	tab := benchtable.Table{}
	for _, r := range rts[1:] {
		tab.Peers = append(tab.Peers, r.name)
	}
	b.ResetTimer()

	// Daemon memory before any pod.
	idle := map[string][]float64{}
	for _, r := range rts {
		kib, err := huskdtest.RssKiB(r.pid())
		if err != nil {
			b.Fatal(err)
		}
		idle[r.name] = []float64{float64(kib) / 1024}
	}

	// Pod startup and teardown, 50 rounds, alternately.
	const rounds = 50
	for i := 0; i < rounds; i++ {
		for _, r := range rts {
			podCfg := networkPod(fmt.Sprintf("startup-%d", i))
			var pod, ctr string
			r.timed(b, "startup", func() (err error) {
				if pod, err = r.rt.RunPodSandbox(ctx, podCfg, ""); err != nil {
					return err
				}
				if ctr, err = r.rt.CreateContainer(ctx, pod, sleeper("sleeper"), podCfg); err != nil {
					return err
				}
				return r.rt.StartContainer(ctx, ctr)
			})
			r.timed(b, "teardown", func() error {
				if err := r.rt.StopContainer(ctx, ctr, 10); err != nil {
					return err
				}
				if err := r.rt.RemoveContainer(ctx, ctr); err != nil {
					return err
				}
				if err := r.rt.StopPodSandbox(ctx, pod); err != nil {
					return err
				}
				return r.rt.RemovePodSandbox(ctx, pod)
			})
		}
	}
	tab.Add("pod startup: RunPodSandbox+Create+Start", "ms", benchtable.Goal{Ratio: 0.30}, msOf(rts, "startup"))
	tab.Add("teardown: StopCtr+RmCtr+StopPod+RmPod", "ms", benchtable.Goal{Ratio: 0.30}, msOf(rts, "teardown"))

	// ExecSync of true, 200 rounds, alternately, in one container each.
	execCtr := map[string]string{}
	for _, r := range rts {
		podCfg := networkPod("exec")
		pod := r.runPod(b, podCfg)
		id, err := r.rt.CreateContainer(ctx, pod, sleeper("sleeper"), podCfg)
		if err == nil {
			err = r.rt.StartContainer(ctx, id)
		}
		if err != nil {
			b.Fatalf("%s: %v", r.name, err)
		}
		execCtr[r.name] = id
	}
	for i := 0; i < 200; i++ {
		for _, r := range rts {
			r.timed(b, "execsync", func() error {
				_, _, err := r.rt.ExecSync(ctx, execCtr[r.name], []string{"true"}, 10*time.Second)
				return err
			})
		}
	}
	tab.Add("ExecSync true", "ms", benchtable.Goal{Ratio: 0.35}, msOf(rts, "execsync"))

	// Before the pods below, which would weigh on it.
	critestBenchmarks(b, &tab, rts)

	// Pods of two containers each, then the calls kubelet makes every
	// second.
	scalePods := func(from, to int) {
		for i := from; i < to; i++ {
			for _, r := range rts {
				podCfg := networkPod(fmt.Sprintf("scale-%d", i))
				pod := r.runPod(b, podCfg)
				for _, name := range []string{"a", "b"} {
					id, err := r.rt.CreateContainer(ctx, pod, sleeper(name), podCfg)
					if err == nil {
						err = r.rt.StartContainer(ctx, id)
					}
					if err != nil {
						b.Fatalf("%s: pod %d: %v", r.name, i, err)
					}
				}
			}
		}
	}
	scalePods(0, listPods)
	for i := 0; i < 100; i++ {
		for _, r := range rts {
			r.timed(b, "listpods", func() error { _, err := r.rt.ListPodSandbox(ctx, nil); return err })
			r.timed(b, "listctrs", func() error { _, err := r.rt.ListContainers(ctx, nil); return err })
			r.timed(b, "liststats", func() error { _, err := r.rt.ListContainerStats(ctx, nil); return err })
			// What no runtime can make shorter: the smallest call's round
			// trip, and the client's decoding of the answers.
			r.timed(b, "version", func() error { _, err := r.rt.Version(ctx, ""); return err })
			decodeTime(b, r, "decodepods", func() (proto.Message, proto.Message, error) {
				l, err := r.rt.ListPodSandbox(ctx, nil)
				return &runtime.ListPodSandboxResponse{Items: l}, &runtime.ListPodSandboxResponse{}, err
			})
			decodeTime(b, r, "decodectrs", func() (proto.Message, proto.Message, error) {
				l, err := r.rt.ListContainers(ctx, nil)
				return &runtime.ListContainersResponse{Containers: l}, &runtime.ListContainersResponse{}, err
			})
		}
	}
	pods, ctrs := listPods+1, 2*listPods+1
	tab.Add(fmt.Sprintf("ListPodSandbox, %d pods", pods), "ms", benchtable.Goal{}, msOf(rts, "listpods"))
	tab.Add("  the client decoding its answer alone", "ms", benchtable.Goal{}, msOf(rts, "decodepods"))
	tab.Add(fmt.Sprintf("ListContainers, %d containers", ctrs), "ms", benchtable.Goal{}, msOf(rts, "listctrs"))
	tab.Add("  the client decoding its answer alone", "ms", benchtable.Goal{}, msOf(rts, "decodectrs"))
	tab.Add("Version: a call's round trip, no work", "ms", benchtable.Goal{}, msOf(rts, "version"))
	tab.Add(fmt.Sprintf("ListContainerStats, %d containers", ctrs), "ms", benchtable.Goal{Ratio: 0.05, Limit: 10}, msOf(rts, "liststats"))

	// Memory with a full node's pods running (the exec pod is one).
	scalePods(listPods, nodePods-1)
	time.Sleep(2 * time.Second) // let shims settle into their idle state
	busy := map[string][]float64{}
	private, pss, rss := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for _, r := range rts {
		kib, err := huskdtest.RssKiB(r.pid())
		if err != nil {
			b.Fatal(err)
		}
		busy[r.name] = []float64{float64(kib) / 1024}
		m := podOverhead(b, r.pid(), nodePods)
		private[r.name], pss[r.name], rss[r.name] = []float64{m.private}, []float64{m.pss}, []float64{m.rss}
	}
	tab.Add("daemon RSS, idle", "MiB", benchtable.Goal{}, idle)
	tab.Add(fmt.Sprintf("daemon RSS, %d pods", nodePods), "MiB", benchtable.Goal{Ratio: 0.30}, busy)
	tab.Add("per pod, shim+pause private", "MiB", benchtable.Goal{Ratio: 0.30, Limit: 0.8}, private)
	tab.Add("per pod, shim+pause PSS", "MiB", benchtable.Goal{}, pss)
	tab.Add("per pod, shim+pause RSS", "MiB", benchtable.Goal{}, rss)

	b.StopTimer()
	others := ""
	if len(tab.Peers) > 1 {
		others = strings.Join(tab.Peers[1:], ", ") + " for reference; "
	}
	fmt.Printf("\nhusk vs %s (ratio = husk/%[1]s of the medians; %[2]smemory: one reading; goal: met or not, x = target/ratio)\n%[3]s",
		tab.Peers[0], others, tab.String())
	path, err := tab.Write("", nil)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("results written to %s\n", path)
	b.ReportMetric(0, "ns/op")
}

type podMemory struct{ private, pss, rss float64 }

// podOverhead sums, over the runtime's shims and the pause processes they
// parent, private memory, PSS and RSS, and divides by the pod count.
func podOverhead(b *testing.B, daemon int, pods int) podMemory {
	procs := processes()
	var sum podMemory
	shims := map[int]bool{}
	for pid, p := range procs {
		if (p.comm == "husk-shim" || strings.HasPrefix(p.comm, "containerd-shim")) && p.belongsTo(daemon, procs) {
			shims[pid] = true
		}
	}
	for pid, p := range procs {
		if !shims[pid] && !(p.comm == "pause" && shims[p.ppid]) {
			continue
		}
		priv, err1 := huskdtest.SmapsKiB(pid, "Private_Dirty:")
		clean, err2 := huskdtest.SmapsKiB(pid, "Private_Clean:")
		pss, err3 := huskdtest.PssKiB(pid)
		rss, err4 := huskdtest.RssKiB(pid)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue // exited since listed
		}
		sum.private += float64(priv + clean)
		sum.pss += float64(pss)
		sum.rss += float64(rss)
	}
	if len(shims) == 0 {
		b.Fatalf("no shim of daemon %d found", daemon)
	}
	n := float64(pods) * 1024
	return podMemory{sum.private / n, sum.pss / n, sum.rss / n}
}

type proc struct {
	comm    string
	ppid    int
	cmdline string
}

// belongsTo tells whether a shim serves the daemon: the directory of a
// path the daemon was given (husk's state, containerd's config) is on the
// shim's command line (husk's --dir, containerd's -address).
func (p proc) belongsTo(daemon int, procs map[int]proc) bool {
	d, ok := procs[daemon]
	if !ok {
		return false
	}
	args := strings.Split(d.cmdline, "\x00")
	for _, arg := range args[1:] {
		if strings.HasPrefix(arg, "/") && filepath.Dir(arg) != "/" && strings.Contains(p.cmdline, filepath.Dir(arg)+"/") {
			return true
		}
	}
	return false
}

func processes() map[int]proc {
	out := map[int]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out[pid] = proc{comm: s[open+1 : end], ppid: ppid, cmdline: string(cmd)}
	}
	return out
}

// critestParams keeps critest -benchmark to a minute a runtime: its own
// defaults are unset (it skips) or thousands of pods.
const critestParams = `containersNumber: 20
containersNumberParallel: 1
podsNumber: 20
podsNumberParallel: 1
imagesNumber: 5
imagesNumberParallel: 1
`

// critestBenchmarks runs critest -benchmark against each runtime in turn
// and adds a row per benchmark operation (CreatePod, StartContainer, …)
// with the median and p90 of its samples.
func critestBenchmarks(b *testing.B, tab *benchtable.Table, rts []*runtimeUnderTest) {
	bin := os.Getenv("HUSK_CRITEST")
	if bin == "" {
		b.Log("HUSK_CRITEST is not set: no critest -benchmark (make bench sets it)")
		return
	}
	params := filepath.Join(b.TempDir(), "params.yaml")
	if err := os.WriteFile(params, []byte(critestParams), 0o644); err != nil {
		b.Fatal(err)
	}
	samples := map[string]map[string][]float64{} // operation → runtime → ms
	var ops []string
	for _, r := range rts {
		dir := b.TempDir()
		cmd := exec.Command(bin, "-benchmark", "-benchmarking-params-file", params, "-benchmarking-output-dir", dir,
			"-runtime-endpoint", r.endpoint, "-image-endpoint", r.endpoint, "-ginkgo.no-color")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			// Its reports are written as each benchmark ends: keep them.
			b.Logf("critest -benchmark against %s: %v\n%s", r.name, err, tailBytes(out, 3000))
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*_benchmark_data.json"))
		sort.Strings(files)
		for _, f := range files {
			var res struct {
				OperationsNames []string `json:"operationsNames"`
				Datapoints      []struct {
					OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
				} `json:"datapoints"`
			}
			body, err := os.ReadFile(f)
			if err == nil {
				err = json.Unmarshal(body, &res)
			}
			if err != nil {
				b.Fatalf("%s: %v", f, err)
			}
			bench := strings.TrimSuffix(filepath.Base(f), "_benchmark_data.json")
			for i, name := range res.OperationsNames {
				op := "critest " + strings.ReplaceAll(bench, "_", " ") + ": " + name
				if samples[op] == nil {
					samples[op] = map[string][]float64{}
					ops = append(ops, op)
				}
				for _, d := range res.Datapoints {
					if i < len(d.OperationsDurationsNs) {
						samples[op][r.name] = append(samples[op][r.name], float64(d.OperationsDurationsNs[i])/1e6)
					}
				}
			}
		}
	}
	for _, op := range ops {
		tab.Add(op, "ms", benchtable.Goal{}, samples[op])
	}
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// decodeTime records under key how long the client takes to decode the
// answer list returns (encoded again here, so that it is the runtime's
// very answer), without the call.
func decodeTime(b *testing.B, r *runtimeUnderTest, key string, list func() (answer, empty proto.Message, err error)) {
	b.Helper()
	answer, empty, err := list()
	if err != nil {
		b.Fatalf("%s: %v", r.name, err)
	}
	wire, err := proto.Marshal(answer)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := proto.Unmarshal(wire, empty); err != nil {
		b.Fatal(err)
	}
	r.samples[key] = append(r.samples[key], time.Since(start))
}
