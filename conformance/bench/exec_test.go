package bench

import (
	"context"
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
	podCfg := hostNetworkPod("bench-exec")
	for _, r := range rts {
		pod := r.runPod(b, podCfg)
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
	b.ReportMetric(0, "ns/op")
}
