package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// soakSample is huskd's footprint at one point of the soak.
type soakSample struct {
	cycles     int
	rssKiB     int
	goroutines int
	fds        int
}

func (s soakSample) String() string {
	return fmt.Sprintf("cycle %5d: RSS %6.1f MiB, %4d goroutines, %3d fds", s.cycles, float64(s.rssKiB)/1024, s.goroutines, s.fds)
}

// Churn (issue 18.2, containerd#12344: shims and memory leaked under pod
// churn). Pod lifecycles, each with two containers (one logging, one
// sleeping), exec probes and a log read, in batches of soakWorkers pods
// at once; HUSK_SOAK_CYCLES lifecycles in all (make test: 200; make
// soak: 2,000). While each batch's pods run, husk-shims are exactly one
// per pod. Between batches, with no pod, huskd's footprint is sampled
// every 100 cycles; at the end its goroutines and descriptors are those
// after the warm-up (within a few: gRPC's and the metrics server's
// connections come and go) and its RSS within a margin of it (the Go
// runtime returns freed memory to the kernel lazily). Leaks of what the
// pods left on the node are the cleanup's check, as in every test. The
// release huskd runs it: the race detector's shadow memory grows with
// every allocation and would hide the curve.
func TestSoak(t *testing.T) {
	cycles := 200
	if v := os.Getenv("HUSK_SOAK_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 200 {
			t.Fatalf("HUSK_SOAK_CYCLES=%q: want a number of at least 200", v)
		}
		cycles = n
	}
	const soakWorkers = 4
	warmup := 40
	releaseBinaries(t)
	addr := fmt.Sprintf("127.0.0.1:%d", huskdtest.FreePort(t))
	config := fmt.Sprintf("[metrics]\naddress = %q\n", addr)
	// HUSK_SOAK_HEAP_DIR keeps huskd's heap profile after the warm-up and
	// at the end, for `go tool pprof -base`: where a growth comes from.
	heapDir := os.Getenv("HUSK_SOAK_HEAP_DIR")
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", huskdtest.FreePort(t))
	if heapDir != "" {
		config += fmt.Sprintf("[debug]\npprof_address = %q\n", pprofAddr)
	}
	h, _ := ctrHuskd(t, config)
	logs := t.TempDir()

	sample := func(done int) soakSample {
		rss, err := huskdtest.RssKiB(h.PID())
		if err != nil {
			t.Fatal(err)
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.PID()))
		if err != nil {
			t.Fatal(err)
		}
		if heapDir != "" {
			saveHeapProfile(t, pprofAddr, filepath.Join(heapDir, fmt.Sprintf("heap-%d.pb.gz", done)))
		}
		return soakSample{cycles: done, rssKiB: rss, goroutines: int(scrape(t, addr)["go_goroutines"]), fds: len(fds)}
	}

	var base soakSample
	var curve []soakSample
	start := time.Now()
	for done := 0; done < cycles; done += soakWorkers {
		pods := make([]*soakPod, soakWorkers)
		var wg sync.WaitGroup
		errs := make(chan error, soakWorkers)
		for i := range pods {
			pods[i] = &soakPod{h: h, name: fmt.Sprintf("soak-%d", done+i), logs: logs}
			wg.Add(1)
			go func(p *soakPod) {
				defer wg.Done()
				if err := p.start(); err != nil {
					errs <- fmt.Errorf("%s: %w", p.name, err)
				}
			}(pods[i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if shims, listed := h.Shims(), podCount(t, h); len(shims) != listed || listed != soakWorkers {
			t.Fatalf("after %d cycles: %d shims for %d pods listed (%d running):\n%s", done, len(shims), listed, soakWorkers, strings.Join(shims, "\n"))
		}
		errs = make(chan error, soakWorkers)
		for _, p := range pods {
			wg.Add(1)
			go func(p *soakPod) {
				defer wg.Done()
				if err := p.finish(); err != nil {
					errs <- fmt.Errorf("%s: %w", p.name, err)
				}
			}(p)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		n := done + soakWorkers
		switch {
		case n == warmup:
			base = sample(n)
			curve = append(curve, base)
		case n%100 == 0 || n >= cycles:
			curve = append(curve, sample(n))
		}
	}
	elapsed := time.Since(start)
	last := curve[len(curve)-1]
	var b strings.Builder
	for _, s := range curve {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	t.Logf("%d pod lifecycles (%d containers, %d exec probes) in %s, %.0f ms each; after the warm-up and every 100 cycles:\n%s",
		cycles, 2*cycles, soakExecs*cycles, elapsed.Round(time.Second), float64(elapsed.Milliseconds())/float64(cycles), b.String())
	if shims := h.Shims(); len(shims) != 0 {
		t.Errorf("%d shims left with no pod:\n%s", len(shims), strings.Join(shims, "\n"))
	}
	if last.goroutines > base.goroutines+5 {
		t.Errorf("huskd's goroutines grew from %d after the warm-up to %d after %d cycles", base.goroutines, last.goroutines, cycles)
	}
	if last.fds > base.fds+5 {
		t.Errorf("huskd's open descriptors grew from %d after the warm-up to %d after %d cycles", base.fds, last.fds, cycles)
	}
	// A leak of 4 KiB a lifecycle is 8 MiB over 2,000: the margin is for
	// the runtime's lazy return of memory, not for a leak of a long soak.
	if margin := max(base.rssKiB/4, 8<<10); last.rssKiB > base.rssKiB+margin {
		t.Errorf("huskd's RSS grew from %d KiB after the warm-up to %d KiB after %d cycles (margin %d KiB)", base.rssKiB, last.rssKiB, cycles, margin)
	}
}

// soakExecs is how many exec probes each soak pod answers.
const soakExecs = 3

// soakPod is one lifecycle of the soak: a pod as kubelet runs one, with
// an app container that logs and answers exec probes, and a sidecar.
type soakPod struct {
	h        *huskdtest.Huskd
	name     string
	logs     string
	cfg      *runtime.PodSandboxConfig
	id       string
	app, top string
}

func (p *soakPod) start() error {
	ctx := context.Background()
	p.cfg = huskdtest.PodConfig(p.name)
	p.cfg.LogDirectory = filepath.Join(p.logs, p.name)
	id, err := p.h.Runtime.RunPodSandbox(ctx, p.cfg, "")
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	p.id = id
	app := ctrConfig("app", "sh", "-c", "echo ready "+p.name+"; touch /tmp/ready; exec sleep 1000")
	top := ctrConfig("sidecar", "sleep", "1000")
	for _, c := range []struct {
		cfg *runtime.ContainerConfig
		id  *string
	}{{app, &p.app}, {top, &p.top}} {
		cid, err := p.h.Runtime.CreateContainer(ctx, p.id, c.cfg, p.cfg)
		if err != nil {
			return fmt.Errorf("CreateContainer %s: %w", c.cfg.Metadata.Name, err)
		}
		if err := p.h.Runtime.StartContainer(ctx, cid); err != nil {
			return fmt.Errorf("StartContainer %s: %w", c.cfg.Metadata.Name, err)
		}
		*c.id = cid
	}
	return nil
}

// finish probes the app as kubelet's exec readiness probe would, reads
// its log, and stops and removes the pod as kubelet does: the containers
// with a grace period of 0 (their sleeps ignore SIGTERM), then the pod.
func (p *soakPod) finish() error {
	ctx := context.Background()
	want := "ready " + p.name + "\n"
	// Until the app has touched /tmp/ready a probe fails, as kubelet's
	// would, and is made again.
	probes := 0
	var err error
	if !huskdtest.Until(30*time.Second, func() bool {
		if _, _, err = p.h.Runtime.ExecSync(ctx, p.app, []string{"cat", "/tmp/ready"}, 10*time.Second); err == nil {
			probes++
		}
		return probes == soakExecs
	}) {
		return fmt.Errorf("exec probe: %w", err)
	}
	var log []byte
	if !huskdtest.Until(30*time.Second, func() bool {
		log, _ = os.ReadFile(filepath.Join(p.cfg.LogDirectory, "app.log"))
		return strings.HasSuffix(string(log), " stdout F "+want)
	}) {
		return fmt.Errorf("the app's log is %q, want its line %q", log, want)
	}
	for _, c := range []string{p.app, p.top} {
		if err := p.h.Runtime.StopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("StopContainer: %w", err)
		}
	}
	if err := p.h.Runtime.StopPodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	if err := p.h.Runtime.RemovePodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	return os.RemoveAll(p.cfg.LogDirectory)
}

func podCount(t *testing.T, h *huskdtest.Huskd) int {
	t.Helper()
	pods, err := h.Runtime.ListPodSandbox(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(pods)
}

// saveHeapProfile writes huskd's heap profile, after a collection, to path.
func saveHeapProfile(t *testing.T, addr, path string) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("heap profile: %s, %v", resp.Status, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
