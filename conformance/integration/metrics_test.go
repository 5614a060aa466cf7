package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// scrape reads huskd's /metrics: each sample by its name and labels
// ({name}{label=value,...} sorted), a histogram by its count.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// A pod's life, a pull that works and one that fails, a CNI ADD that
// fails, an OOM kill: each family of huskd's metrics moves, and crictl
// metricsp (ListPodSandboxMetrics) reports the pod meanwhile.
func TestMetrics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", huskdtest.FreePort(t))
	h, _ := ctrHuskd(t, fmt.Sprintf("[metrics]\naddress = %q\n", addr))
	ctx := context.Background()
	before := scrape(t, addr)

	if _, err := h.Images.PullImage(ctx, spec(busyboxRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Images.PullImage(ctx, spec("registry.k8s.io/e2e-test-images/nothere:1"), nil, nil); err == nil {
		t.Fatal("pulling an image the registry does not have worked")
	}
	bad := huskdtest.PodConfig("badbandwidth")
	bad.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}
	if _, err := h.Runtime.RunPodSandbox(ctx, bad, ""); err == nil {
		t.Fatal("a pod with a bad bandwidth annotation ran")
	}

	pod, podCfg := podWithLogs(t, h, "metrics", nil)
	talker := runCtr(t, h, pod, podCfg, ctrConfig("talker", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2"))
	waitExited(t, h, talker, 30*time.Second)
	hog := ctrConfig("hog", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")
	hog.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20, MemorySwapLimitInBytes: 32 << 20}
	if st, out := runToExit(t, h, pod, podCfg, hog); st.Reason != "OOMKilled" {
		t.Fatalf("the hog exited %d %q, not OOMKilled; output:\n%s", st.ExitCode, st.Reason, out)
	}
	if got := logText(t, filepath.Join(podCfg.LogDirectory, "talker.log")); !strings.Contains(got, "line 5") {
		t.Fatalf("talker's log: %q", got)
	}

	scraped := time.Now()
	running := scrape(t, addr)
	t.Logf("a scrape with one pod took %v", time.Since(scraped))
	if running["husk_shims"] != 1 || running["husk_shim_memory_bytes"] < 1<<20 {
		t.Errorf("with one pod: %v shims of %v bytes", running["husk_shims"], running["husk_shim_memory_bytes"])
	}
	if running["husk_image_pulls_in_progress"] != 0 {
		t.Errorf("pulls in progress: %v", running["husk_image_pulls_in_progress"])
	}
	var metricsp struct {
		PodMetrics []struct {
			PodSandboxID string `json:"podSandboxId"`
		} `json:"podMetrics"`
	}
	if err := json.Unmarshal([]byte(crictl(t, h, "metricsp", "-o", "json")), &metricsp); err != nil ||
		len(metricsp.PodMetrics) != 1 || metricsp.PodMetrics[0].PodSandboxID != pod {
		t.Errorf("crictl metricsp: %+v, %v", metricsp, err)
	}

	for _, id := range []string{talker} {
		if err := h.Runtime.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, addr)

	grew := func(key string, by float64) {
		t.Helper()
		if d := after[key] - before[key]; d < by {
			t.Errorf("%s moved by %v (%v to %v), want at least %v", key, d, before[key], after[key], by)
		}
	}
	grew("husk_cri_requests_total{code=OK,method=RunPodSandbox}", 1)
	grew("husk_cri_requests_total{code=OK,method=ListPodSandboxMetrics}", 1)
	grew("husk_cri_request_duration_seconds{method=CreateContainer}", 2)
	grew("husk_cri_request_duration_seconds{method=PullImage}", 2)
	failed := 0.0
	for k, v := range after {
		if strings.HasPrefix(k, "husk_cri_requests_total{") && strings.Contains(k, "method=PullImage") && !strings.Contains(k, "code=OK") {
			failed += v - before[k]
		}
	}
	if failed != 1 {
		t.Errorf("failed PullImage calls counted: %v, want 1", failed)
	}
	for _, op := range []string{"create", "network", "stop", "remove"} {
		grew("husk_sandbox_operation_duration_seconds{operation="+op+"}", 1)
	}
	for _, op := range []string{"create", "start", "stop", "remove"} {
		grew("husk_container_operation_duration_seconds{operation="+op+"}", 1)
	}
	grew("husk_image_pulls_total{outcome=success}", 1)
	grew("husk_image_pulls_total{outcome=failure}", 1)
	grew("husk_image_pull_bytes_total", 1)
	grew("husk_cni_operations_total{operation=add}", 2)
	grew("husk_cni_operations_total{operation=del}", 1)
	grew("husk_cni_errors_total{operation=add}", 1)
	grew("husk_oom_kills_total", 1)
	// Six records of the talker ("line N", "oops"), each after its
	// timestamp; the hog's dd may print its own.
	grew("husk_container_log_lines_total", 6)
	grew("husk_container_log_bytes_total", float64(6*len("2026-01-02T15:04:05Z stdout F line 1\n")))
	if after["husk_shims"] != 0 {
		t.Errorf("shims after the pod's removal: %v", after["husk_shims"])
	}
	for _, k := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if after[k] <= 0 {
			t.Errorf("%s: %v", k, after[k])
		}
	}
}

// An address huskd cannot serve is a start-up error that names the key,
// before huskd has made anything.
func TestMetricsAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Short: the state path must leave room for shim socket paths.
	dir, err := os.MkdirTemp("/tmp", "hkm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	args := huskdtest.Config(t, fmt.Sprintf("[metrics]\naddress = %q\n", l.Addr().String()))
	args = append(args, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--listen", filepath.Join(dir, "husk.sock"))
	cmd := exec.Command(filepath.Join(huskdtest.Bin(t), "huskd"), args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "metrics.address") || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("huskd with its metrics address in use: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("huskd made its state directory before failing: %v", err)
	}
}
