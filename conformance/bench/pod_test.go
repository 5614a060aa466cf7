package bench

import (
	"context"
	"fmt"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// networkPod is a pod in its own network namespace, which CNI sets up.
func networkPod(name string) *runtime.PodSandboxConfig {
	cfg := hostNetworkPod(name)
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_POD
	return cfg
}

// BenchmarkRunPodSandboxBridge times RunPodSandbox and then
// StopPodSandbox+RemovePodSandbox of a pod on a bridge network, husk and
// each containerd alternately, 30 pods each: all run the same CNI plugins
// (bridge, host-local, portmap, bandwidth from /usr/lib/cni) with the
// same configuration, each on its own bridge.
func BenchmarkRunPodSandboxBridge(b *testing.B) {
	rts := runtimes(b, true)
	ctx := context.Background()
	const rounds = 30
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < rounds; i++ {
			for _, r := range rts {
				cfg := networkPod(fmt.Sprintf("bridge-%d-%d", n, i))
				var id string
				r.timed(b, "run", func() (err error) {
					id, err = r.rt.RunPodSandbox(ctx, cfg, "")
					return err
				})
				st, err := r.rt.PodSandboxStatus(ctx, id, false)
				if err != nil || st.GetStatus().GetNetwork().GetIp() == "" {
					b.Fatalf("%s: pod has no IP: %v", r.name, err)
				}
				r.timed(b, "stop", func() error {
					if err := r.rt.StopPodSandbox(ctx, id); err != nil {
						return err
					}
					return r.rt.RemovePodSandbox(ctx, id)
				})
			}
		}
	}
	reportSamples(b, rts, "run")
	reportSamples(b, rts, "stop")
	b.ReportMetric(0, "ns/op")
}
