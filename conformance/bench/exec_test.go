package bench

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkExecSync times ExecSync of `true` in a running busybox
// container (host-network pod), husk and containerd alternately, 200
// calls each: kubelet's exec probe.
func BenchmarkExecSync(b *testing.B) {
	rts := runtimes(b, false)
	ctx := context.Background()
	ctrs := map[string]string{}
	for _, r := range rts {
		podCfg := hostNetworkPod("bench-exec")
		pod, err := r.rt.RunPodSandbox(ctx, podCfg, "")
		if err != nil {
			b.Fatalf("%s: %v", r.name, err)
		}
		b.Cleanup(func() {
			_ = r.rt.StopPodSandbox(ctx, pod)
			_ = r.rt.RemovePodSandbox(ctx, pod)
		})
		id, err := r.rt.CreateContainer(ctx, pod, sleeper("sleeper"), podCfg)
		if err == nil {
			err = r.rt.StartContainer(ctx, id)
		}
		if err != nil {
			b.Fatalf("%s: %v", r.name, err)
		}
		ctrs[r.name] = id
	}
	const rounds = 200
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < rounds; i++ {
			for _, r := range rts {
				r.timed(b, "execsync", func() error {
					_, _, err := r.rt.ExecSync(ctx, ctrs[r.name], []string{"true"}, 10*time.Second)
					return err
				})
			}
		}
	}
	reportSamples(b, rts, "execsync")
	for _, r := range rts {
		d := append([]time.Duration(nil), r.samples["execsync"]...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, r.name+"-execsync-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}
