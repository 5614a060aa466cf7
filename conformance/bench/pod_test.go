package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/network"
)

// containerdNetwork writes husk's built-in network, on a bridge and subnet
// of its own, into a CNI config directory for containerd, and removes the
// bridge afterwards.
func containerdNetwork(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	r := make([]byte, 2)
	_, _ = rand.Read(r)
	bridge := fmt.Sprintf("hkc%x", r)
	subnet := fmt.Sprintf("10.104.%d.0/24", r[0])
	conf, err := network.Builtin(network.Config{
		BridgeName:  bridge,
		Subnet:      subnet,
		IPAMDataDir: filepath.Join(dir, "ipam"),
	}, "")
	if err != nil {
		b.Fatal(err)
	}
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-husk.conflist"), conf, 0o644); err != nil {
		b.Fatal(err)
	}
	huskdtest.RestoreSysctl(b, "/proc/sys/net/ipv4/ip_forward")
	b.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		if err := network.RemoveMasquerade(bridge); err != nil {
			b.Error(err)
		}
	})
	// The masquerade huskd writes for its own bridge, written here for
	// containerd's, so that both networks do the same.
	if err := network.EnsureMasquerade(bridge, subnet); err != nil {
		b.Fatal(err)
	}
	return confDir
}

// networkPod is a pod in its own network namespace, which CNI sets up.
func networkPod(name string) *runtime.PodSandboxConfig {
	cfg := hostNetworkPod(name)
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_POD
	return cfg
}

// BenchmarkRunPodSandboxBridge times RunPodSandbox and then
// StopPodSandbox+RemovePodSandbox of a pod on a bridge network, husk and
// containerd alternately, 30 pods each: both run the same CNI plugins
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
