package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// row is one line of the comparison: a median and p90 per runtime (one
// value for a memory figure), and the ratio husk/containerd of medians.
type row struct {
	What       string  `json:"what"`
	Unit       string  `json:"unit"`
	Samples    int     `json:"samples"`
	HuskMedian float64 `json:"husk_median"`
	HuskP90    float64 `json:"husk_p90"`
	CtrdMedian float64 `json:"containerd_median"`
	CtrdP90    float64 `json:"containerd_p90"`
	Ratio      float64 `json:"ratio"`
	Target     float64 `json:"target,omitempty"` // the ratio to reach, issue 8
}

type table struct {
	rows []row
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// add records one workload's samples of both runtimes.
func (t *table) add(what, unit string, target float64, husk, ctrd []float64) {
	r := row{What: what, Unit: unit, Samples: len(husk), Target: target,
		HuskMedian: quantile(husk, 0.5), HuskP90: quantile(husk, 0.9),
		CtrdMedian: quantile(ctrd, 0.5), CtrdP90: quantile(ctrd, 0.9)}
	if r.CtrdMedian > 0 {
		r.Ratio = r.HuskMedian / r.CtrdMedian
	}
	t.rows = append(t.rows, r)
}

func (t *table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %5s %9s %9s %9s %9s %6s %6s\n", "workload", "n", "husk", "husk p90", "ctrd", "ctrd p90", "ratio", "target")
	for _, r := range t.rows {
		target, met := "", ""
		if r.Target > 0 {
			target = fmt.Sprintf("%.2f", r.Target)
			if r.Ratio > 0 && r.Ratio <= r.Target {
				met = " met"
			}
		}
		fmt.Fprintf(&b, "%-44s %5d %9.2f %9.2f %9.2f %9.2f %6.3f %6s%s\n",
			r.What+" ("+r.Unit+")", r.Samples, r.HuskMedian, r.HuskP90, r.CtrdMedian, r.CtrdP90, r.Ratio, target, met)
	}
	return b.String()
}

// write saves the table as JSON under bench-results/ (or $HUSK_BENCH_JSON),
// so that runs can be compared over time.
func (t *table) write(b *testing.B) {
	path := os.Getenv("HUSK_BENCH_JSON")
	if path == "" {
		dir := filepath.Join("..", "..", "bench-results")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		path = filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+".json")
	}
	host, _ := os.Hostname()
	cpus := goruntime.NumCPU()
	body, err := json.MarshalIndent(map[string]any{
		"time": time.Now().UTC(), "host": host, "cpus": cpus, "kernel": kernel(), "rows": t.rows,
	}, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("results written to %s\n", path)
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func ms(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v.Microseconds()) / 1000
	}
	return out
}

// BenchmarkCompare runs the workloads of issue 8 against huskd and
// containerd alternately, prints one table (median and p90 of each, ratio
// husk/containerd of the medians) and writes it as JSON.
func BenchmarkCompare(b *testing.B) {
	rts := runtimes(b, true)
	if len(rts) < 2 {
		b.Skip("containerd is not installed: `make bench` installs it")
	}
	husk, ctrd := rts[0], rts[1]
	ctx := context.Background()
	var tab table
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
	tab.add("pod startup: RunPodSandbox+Create+Start", "ms", 0.4, ms(husk.samples["startup"]), ms(ctrd.samples["startup"]))
	tab.add("teardown: StopCtr+RmCtr+StopPod+RmPod", "ms", 0.5, ms(husk.samples["teardown"]), ms(ctrd.samples["teardown"]))

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
	tab.add("ExecSync true", "ms", 0.5, ms(husk.samples["execsync"]), ms(ctrd.samples["execsync"]))

	// Before the 100 pods below, which would weigh on it.
	critestBenchmarks(b, &tab, rts)

	// 100 pods × 2 containers each (with the exec pod: 101 pods, 201
	// containers), then the calls kubelet makes every second.
	const pods = 100
	for i := 0; i < pods; i++ {
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
	tab.add("ListPodSandbox, 101 pods", "ms", 0.5, ms(husk.samples["listpods"]), ms(ctrd.samples["listpods"]))
	tab.add("  the client decoding its answer alone", "ms", 0, ms(husk.samples["decodepods"]), ms(ctrd.samples["decodepods"]))
	tab.add("ListContainers, 201 containers", "ms", 0.5, ms(husk.samples["listctrs"]), ms(ctrd.samples["listctrs"]))
	tab.add("  the client decoding its answer alone", "ms", 0, ms(husk.samples["decodectrs"]), ms(ctrd.samples["decodectrs"]))
	tab.add("Version: a call's round trip, no work", "ms", 0, ms(husk.samples["version"]), ms(ctrd.samples["version"]))
	tab.add("ListContainerStats, 201 containers", "ms", 0.5, ms(husk.samples["liststats"]), ms(ctrd.samples["liststats"]))

	// Memory with the pods running.
	time.Sleep(2 * time.Second) // let shims settle into their idle state
	busy := map[string][]float64{}
	perPod := map[string]podMemory{}
	for _, r := range rts {
		kib, err := huskdtest.RssKiB(r.pid())
		if err != nil {
			b.Fatal(err)
		}
		busy[r.name] = []float64{float64(kib) / 1024}
		perPod[r.name] = podOverhead(b, r.pid(), pods+1)
	}
	tab.add("daemon RSS, idle", "MiB", 0, idle["husk"], idle["containerd"])
	tab.add("daemon RSS, 101 pods", "MiB", 0.5, busy["husk"], busy["containerd"])
	tab.add("per pod, shim+pause private", "MiB", 0, []float64{perPod["husk"].private}, []float64{perPod["containerd"].private})
	tab.add("per pod, shim+pause PSS", "MiB", 0.5, []float64{perPod["husk"].pss}, []float64{perPod["containerd"].pss})
	tab.add("per pod, shim+pause RSS", "MiB", 0, []float64{perPod["husk"].rss}, []float64{perPod["containerd"].rss})

	b.StopTimer()
	fmt.Print("\nhusk vs containerd 1.6 (ratio = husk/containerd of the medians; memory: one reading)\n" + tab.String())
	tab.write(b)
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
func critestBenchmarks(b *testing.B, tab *table, rts []*runtimeUnderTest) {
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
		tab.add(op, "ms", 0, samples[op]["husk"], samples[op]["containerd"])
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
