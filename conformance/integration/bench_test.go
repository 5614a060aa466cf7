package integration

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

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
