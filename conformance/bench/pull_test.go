// Package bench measures husk against containerd 2.4 with runc 1.5 (today's
// peer) and Debian's containerd 1.6 (kept for reference) on the same
// machine in the same run. `make bench` runs it; every figure is a
// benchmark metric, never an assertion.
package bench

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// largeImage is a 4-layer image of about 128 MiB compressed (and as much
// unpacked): 2000 files of 16 KiB of pseudo-random bytes per layer, so that
// both the download and the unpack of many files count. Fixed seed: the
// same digests every run.
func largeImage() v1.Image {
	rng := rand.New(rand.NewSource(42))
	var layers []v1.Layer
	for l := 0; l < 4; l++ {
		files := []images.File{{Name: fmt.Sprintf("data%d/", l)}}
		for i := 0; i < 2000; i++ {
			body := make([]byte, 16<<10)
			rng.Read(body)
			files = append(files, images.File{Name: fmt.Sprintf("data%d/%03d/file%04d", l, i/100, i), Body: body})
			if i%100 == 0 {
				files = append(files[:len(files)-1], images.File{Name: fmt.Sprintf("data%d/%03d/", l, i/100)}, files[len(files)-1])
			}
		}
		layers = append(layers, images.Layer(files...))
	}
	return images.Image(images.Config{Cmd: []string{"sh"}}, layers...)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// diskWriteMBps is the filesystem's own sequential write speed where the
// stores live, for scale: 256 MiB written and fsynced by dd.
func diskWriteMBps(b *testing.B, dir string) float64 {
	f := filepath.Join(dir, "dd.test")
	defer os.Remove(f)
	start := time.Now()
	out, err := exec.Command("dd", "if=/dev/zero", "of="+f, "bs=1M", "count=256", "conv=fdatasync").CombinedOutput()
	if err != nil {
		b.Logf("dd: %v: %s", err, out)
		return 0
	}
	return 256 / time.Since(start).Seconds()
}

// BenchmarkPullLargeImage pulls and unpacks the same large image from the
// same local registry with husk and each containerd, alternately, three
// rounds each, removing it in between (the registry's blobs stay in memory,
// the runtimes' page caches stay warm for all alike).
func BenchmarkPullLargeImage(b *testing.B) {
	reg := images.StartRegistry(b)
	img := largeImage()
	reg.Push(b, "bench/large:1", img)
	size := int64(0)
	ls, _ := img.Layers()
	for _, l := range ls {
		s, _ := l.Size()
		size += s
	}
	hostsDir := reg.MirrorConfig(b, "registry.k8s.io")
	h := huskdtest.Start(b, huskdtest.Config(b, fmt.Sprintf("[registry]\nconfig_path = %q\n", hostsDir))...)
	type rt struct {
		name   string
		images internalapi.ImageManagerService
		times  []time.Duration
	}
	rts := []*rt{{name: "husk", images: h.Images}}
	for _, c := range peers(b, hostsDir, false) {
		rts = append(rts, &rt{name: string(c.Release), images: c.Images})
	}
	ctx := context.Background()
	ref := &runtime.ImageSpec{Image: "registry.k8s.io/bench/large:1"}
	const rounds = 3
	for n := 0; n < b.N; n++ {
		for r := 0; r < rounds; r++ {
			for _, x := range rts {
				start := time.Now()
				id, err := x.images.PullImage(ctx, ref, nil, nil)
				x.times = append(x.times, time.Since(start))
				if err != nil {
					b.Fatalf("%s: %v", x.name, err)
				}
				if err := x.images.RemoveImage(ctx, &runtime.ImageSpec{Image: id}); err != nil {
					b.Fatalf("%s: removing: %v", x.name, err)
				}
			}
		}
	}
	var line []string
	for _, x := range rts {
		m := median(x.times)
		b.ReportMetric(m.Seconds(), x.name+"-median-s")
		line = append(line, fmt.Sprintf("%s %v", x.name, x.times))
	}
	for _, x := range rts[1:] {
		b.ReportMetric(median(rts[0].times).Seconds()/median(x.times).Seconds(), "husk/"+x.name)
	}
	b.ReportMetric(float64(size)/(1<<20), "image-MiB")
	b.ReportMetric(diskWriteMBps(b, h.Dir), "disk-write-MB/s")
	b.ReportMetric(0, "ns/op")
	b.Log(strings.Join(line, "; "))
	for _, l := range strings.Split(h.Log(), "\n") {
		if strings.Contains(l, "Layer pulled") || strings.Contains(l, "Image pulled") {
			b.Log(l[strings.Index(l, "]")+2:])
		}
	}
}
