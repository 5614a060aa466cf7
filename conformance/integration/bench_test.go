package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// rounds is how many pods each benchmark times, whatever b.N: medians need
// samples, and `make bench` runs each benchmark once (-benchtime 1x).
const rounds = 30

func report(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	b.ReportMetric(ms(d[len(d)/2]), "median-ms")
	b.ReportMetric(ms(d[len(d)*9/10]), "p90-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRunPodSandbox times RunPodSandbox of a pod with its own
// network (the built-in bridge network, through CNI), IPC, UTS and PID
// namespaces.
func BenchmarkRunPodSandbox(b *testing.B) {
	h := huskdtest.Start(b)
	ctx := context.Background()
	var d []time.Duration
	for n := 0; n < b.N; n++ {
		var ids []string
		for i := 0; i < rounds; i++ {
			cfg := huskdtest.PodConfig(fmt.Sprintf("bench-run-%d-%d", n, i))
			start := time.Now()
			id, err := h.Runtime.RunPodSandbox(ctx, cfg, "")
			d = append(d, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		b.StopTimer()
		for _, id := range ids {
			if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	report(b, d)
}

// BenchmarkStopRemovePodSandbox times StopPodSandbox + RemovePodSandbox.
func BenchmarkStopRemovePodSandbox(b *testing.B) {
	h := huskdtest.Start(b)
	ctx := context.Background()
	var d []time.Duration
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		var ids []string
		for i := 0; i < rounds; i++ {
			ids = append(ids, h.RunPod(huskdtest.PodConfig(fmt.Sprintf("bench-stop-%d-%d", n, i))))
		}
		b.StartTimer()
		for _, id := range ids {
			start := time.Now()
			if err := h.Runtime.StopPodSandbox(ctx, id); err != nil {
				b.Fatal(err)
			}
			if err := h.Runtime.RemovePodSandbox(ctx, id); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
	}
	report(b, d)
}

// BenchmarkListContainerStats times ListContainerStats of 200 running
// containers (20 pods of 10; $HUSK_BENCH_STATS_CONTAINERS changes the
// count), without a filter, as kubelet lists them. Every answer must be
// read during its call: each container's CPU reading carries a timestamp
// between the call's start and end. Issue 14's target: a median under
// 10 ms. huskd reuses a writable layer's walk for a second (its reading
// carries the walk's time), so back-to-back calls walk none; kubelet,
// which asks every ~10 s, has every layer walked: walked-median-ms is
// the median of calls made more than a second apart. huskd-cpu-ms is the
// CPU time huskd spends per back-to-back call: unlike the call's duration,
// it does not grow with the load of a shared test machine.
func BenchmarkListContainerStats(b *testing.B) {
	containers := 200
	if v := os.Getenv("HUSK_BENCH_STATS_CONTAINERS"); v != "" {
		var err error
		if containers, err = strconv.Atoi(v); err != nil || containers < 1 {
			b.Fatalf("HUSK_BENCH_STATS_CONTAINERS=%q", v)
		}
	}
	const perPod = 10
	h, _ := ctrHuskd(b, os.Getenv("HUSK_BENCH_STATS_CONFIG"))
	ctx := context.Background()
	var pods []string
	var podCfg *runtime.PodSandboxConfig
	b.Cleanup(func() {
		for _, p := range pods {
			if err := h.Runtime.RemovePodSandbox(context.Background(), p); err != nil {
				b.Error(err)
			}
		}
	})
	for i := 0; i < containers; i++ {
		if i%perPod == 0 {
			podCfg = huskdtest.PodConfig(fmt.Sprintf("bench-stats-%d", i/perPod))
			pods = append(pods, h.RunPod(podCfg))
		}
		cfg := ctrConfig(fmt.Sprintf("c%d", i), "sleep", "3600")
		id, err := h.Runtime.CreateContainer(ctx, pods[len(pods)-1], cfg, podCfg)
		if err == nil {
			err = h.Runtime.StartContainer(ctx, id)
		}
		if err != nil {
			b.Fatalf("container %d: %v", i, err)
		}
	}
	call := func() time.Duration {
		start := time.Now()
		l, err := h.Runtime.ListContainerStats(ctx, nil)
		end := time.Now()
		if err != nil || len(l) != containers {
			b.Fatalf("ListContainerStats: %d stats, %v", len(l), err)
		}
		for _, st := range l {
			if ts := st.GetCpu().GetTimestamp(); ts < start.UnixNano() || ts > end.UnixNano() {
				b.Fatalf("container %s: CPU read at %v, outside the call [%v, %v]", st.GetAttributes().GetId(), time.Unix(0, ts), start, end)
			}
		}
		return end.Sub(start)
	}
	b.ResetTimer()
	first := call()
	var d, walked []time.Duration
	var cpu time.Duration
	for n := 0; n < b.N; n++ {
		cpu0 := threadsCPU(b, h.PID())
		for i := 0; i < rounds; i++ {
			d = append(d, call())
		}
		cpu += threadsCPU(b, h.PID()) - cpu0
		for i := 0; i < 5; i++ {
			time.Sleep(1100 * time.Millisecond) // past the reuse of the walks
			walked = append(walked, call())
		}
	}
	report(b, d)
	sort.Slice(walked, func(i, j int) bool { return walked[i] < walked[j] })
	b.ReportMetric(float64(walked[len(walked)/2].Microseconds())/1000, "walked-median-ms")
	b.ReportMetric(float64(first.Microseconds())/1000, "first-call-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(d)), "huskd-cpu-ms")
}

// threadsCPU is the time pid's threads have spent on a CPU, from the first
// field of each thread's schedstat (ns).
func threadsCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		b.Fatalf("threads of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		ns, err := strconv.ParseInt(strings.Fields(string(body))[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// BenchmarkPodMemory reports, in KiB, the memory of husk's processes with
// 10 pods running: Private_Dirty of each pause and shim (averaged), their
// PSS and RSS, and huskd's own, idle and with the pods.
func BenchmarkPodMemory(b *testing.B) {
	const pods = 10
	h := huskdtest.Start(b)
	// Freshly built binaries sit in the page cache as dirty pages, and
	// smaps counts a mapped dirty page as Private_Dirty: write them out.
	syscall.Sync()
	time.Sleep(500 * time.Millisecond)
	huskdPID := huskdPid(b, h)
	idle, _ := huskdtest.PrivateDirtyKiB(huskdPID)
	for n := 0; n < b.N; n++ {
		var infos []huskdtest.Info
		for i := 0; i < pods; i++ {
			_, info := h.PodInfo(h.RunPod(huskdtest.PodConfig(fmt.Sprintf("bench-mem-%d-%d", n, i))))
			infos = append(infos, info)
		}
		time.Sleep(2 * time.Second) // let the shims settle into their idle state
		sum := map[string]int{}
		for _, info := range infos {
			for name, pid := range map[string]int{"pause": info.Pid, "shim": info.ShimPid} {
				pd, err1 := huskdtest.PrivateDirtyKiB(pid)
				pss, err2 := huskdtest.PssKiB(pid)
				rss, err3 := huskdtest.RssKiB(pid)
				if err1 != nil || err2 != nil || err3 != nil {
					b.Fatal(err1, err2, err3)
				}
				sum[name+"-private-KiB"] += pd
				sum[name+"-pss-KiB"] += pss
				sum[name+"-rss-KiB"] += rss
			}
		}
		for k, v := range sum {
			b.ReportMetric(float64(v)/pods, k)
		}
		withPods, _ := huskdtest.PrivateDirtyKiB(huskdPID)
		b.ReportMetric(float64(idle), "huskd-idle-private-KiB")
		b.ReportMetric(float64(withPods), "huskd-10pods-private-KiB")
		b.ReportMetric(float64(sum["pause-pss-KiB"]+sum["shim-pss-KiB"])/pods, "per-pod-pss-KiB")
		b.ReportMetric(0, "ns/op")
		b.StopTimer()
		pl, _ := h.Runtime.ListPodSandbox(context.Background(), nil)
		for _, p := range pl {
			_ = h.Runtime.RemovePodSandbox(context.Background(), p.Id)
		}
		b.StartTimer()
	}
}

func huskdPid(b *testing.B, h *huskdtest.Huskd) int {
	b.Helper()
	pid := h.PID()
	if pid <= 0 {
		b.Fatal("no huskd pid")
	}
	return pid
}
