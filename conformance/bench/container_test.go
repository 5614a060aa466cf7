package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/containerdtest"
	"github.com/huskrt/husk/conformance/critest"
	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

const busyboxRef = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// pauseImage is registry.k8s.io/pause:3.9 for containerd, which pulls a
// sandbox image; built from husk's own pause, so nothing leaves the node.
func pauseImage(b *testing.B) v1.Image {
	bin, err := os.ReadFile(filepath.Join(huskdtest.Bin(b), "husk-pause"))
	if err != nil {
		b.Fatal(err)
	}
	return images.Image(images.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		images.Layer(images.File{Name: "pause", Body: bin, Mode: 0o755}))
}

// runtimeUnderTest is husk or one of the containerd releases it is
// compared with; name is "husk" or the containerdtest.Release.
type runtimeUnderTest struct {
	name     string
	endpoint string // unix://…
	rt       internalapi.RuntimeService
	images   internalapi.ImageManagerService
	pid      func() int
	samples  map[string][]time.Duration
}

// runtimes starts a registry with busybox and pause, a huskd, and each
// containerd release that is installed (containerdtest.Releases, in that
// order, after husk), all pulling through the same mirrors.
//
// With podNetwork, each containerd gets a CNI config directory holding
// husk's built-in network (on a bridge of its own), so that all run the
// same plugins; without it, only host-network pods can run on containerd.
func runtimes(b *testing.B, podNetwork bool) []*runtimeUnderTest {
	b.Helper()
	// critest's images (busybox among them), so that critest -benchmark
	// runs against the same registry; containerd's sandbox image is a real
	// pause.
	reg, hostsDir := critest.Serve(b)
	reg.Push(b, "pause:3.9", pauseImage(b))
	// At the verbosity huskd runs with in production, as containerd does.
	h := huskdtest.Start(b, append(huskdtest.Config(b, fmt.Sprintf("[registry]\nconfig_path = %q\n", hostsDir)), "-v", "0")...)
	out := []*runtimeUnderTest{{name: "husk", endpoint: "unix://" + h.Sock, rt: h.Runtime, images: h.Images, pid: h.PID}}
	for _, c := range peers(b, hostsDir, podNetwork) {
		out = append(out, &runtimeUnderTest{name: string(c.Release), endpoint: "unix://" + c.Sock, rt: c.Runtime, images: c.Images, pid: c.PID})
	}
	for _, r := range out {
		r.samples = map[string][]time.Duration{}
		if _, err := r.images.PullImage(context.Background(), &runtime.ImageSpec{Image: busyboxRef}, nil, nil); err != nil {
			b.Fatalf("%s: pulling busybox: %v", r.name, err)
		}
	}
	return out
}

// peers starts each containerd release that is installed, saying which
// are not; none with HUSK_BENCH_ONLY set (husk alone).
func peers(b *testing.B, hostsDir string, podNetwork bool) []*containerdtest.Containerd {
	b.Helper()
	if os.Getenv("HUSK_BENCH_ONLY") != "" {
		b.Log("HUSK_BENCH_ONLY is set: measuring husk alone")
		return nil
	}
	var out []*containerdtest.Containerd
	for _, rel := range containerdtest.Releases {
		if _, err := containerdtest.Find(rel); err != nil {
			b.Logf("%s left out: %v", rel, err)
			continue
		}
		opts := containerdtest.Options{Release: rel, HostsDir: hostsDir}
		if podNetwork {
			opts.CNIConfDir = containerdtest.Network(b)
		}
		out = append(out, containerdtest.Start(b, opts))
	}
	return out
}

func hostNetworkPod(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		LogDirectory: "/tmp",
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE},
		}},
	}
}

func sleeper(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: busyboxRef},
		Command:  []string{"sleep", "3600"},
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

// runPod runs a pod that is removed when the benchmark ends.
func (r *runtimeUnderTest) runPod(b *testing.B, cfg *runtime.PodSandboxConfig) string {
	b.Helper()
	ctx := context.Background()
	id, err := r.rt.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		b.Fatalf("%s: RunPodSandbox: %v", r.name, err)
	}
	b.Cleanup(func() {
		_ = r.rt.StopPodSandbox(ctx, id)
		_ = r.rt.RemovePodSandbox(ctx, id)
	})
	return id
}

// timed runs f, adds its duration to the samples of what, and ends the
// benchmark if it failed.
func (r *runtimeUnderTest) timed(b *testing.B, what string, f func() error) {
	b.Helper()
	start := time.Now()
	err := f()
	r.samples[what] = append(r.samples[what], time.Since(start))
	if err != nil {
		b.Fatalf("%s: %s: %v", r.name, what, err)
	}
}

func reportSamples(b *testing.B, rts []*runtimeUnderTest, what string) {
	med := map[string]float64{}
	for _, r := range rts {
		d := append([]time.Duration(nil), r.samples[what]...)
		if len(d) == 0 {
			continue
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		m := float64(d[len(d)/2].Microseconds()) / 1000
		med[r.name] = m
		b.ReportMetric(m, r.name+"-"+what+"-median-ms")
		b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, r.name+"-"+what+"-p90-ms")
		if len(d) >= 100 {
			b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, r.name+"-"+what+"-p99-ms")
		}
	}
	for _, r := range rts[1:] {
		if c := med[r.name]; c > 0 {
			b.ReportMetric(med["husk"]/c, what+"-husk/"+r.name)
		}
	}
}

// BenchmarkContainerStartStop times CreateContainer+StartContainer and
// StopContainer+RemoveContainer of a busybox sleep in a host-network pod
// (no CNI on any side), husk and each containerd alternately, 30 rounds.
func BenchmarkContainerStartStop(b *testing.B) {
	rts := runtimes(b, false)
	ctx := context.Background()
	pods := map[string]string{}
	podCfg := hostNetworkPod("bench-ctr")
	for _, r := range rts {
		pods[r.name] = r.runPod(b, podCfg)
	}
	const rounds = 30
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < rounds; i++ {
			for _, r := range rts {
				cfg := sleeper(fmt.Sprintf("sleeper-%d-%d", n, i))
				var id string
				r.timed(b, "start", func() (err error) {
					if id, err = r.rt.CreateContainer(ctx, pods[r.name], cfg, podCfg); err != nil {
						return err
					}
					return r.rt.StartContainer(ctx, id)
				})
				r.timed(b, "stop", func() error {
					if err := r.rt.StopContainer(ctx, id, 10); err != nil {
						return err
					}
					return r.rt.RemoveContainer(ctx, id)
				})
			}
		}
	}
	reportSamples(b, rts, "start")
	reportSamples(b, rts, "stop")
	b.ReportMetric(0, "ns/op")
}
