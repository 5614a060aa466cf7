package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
	"github.com/huskrt/husk/shim"
)

// busyboxRef is the test image every container test runs: Debian's
// busybox with glibc, plus husktest, served through a mirror.
const busyboxRef = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// ctrHuskd starts a registry with the busybox image and a huskd that has
// pulled it.
func ctrHuskd(t testing.TB, extraConfig string) (*huskdtest.Huskd, *images.Registry) {
	t.Helper()
	h, reg := imageHuskd(t, extraConfig)
	reg.Push(t, "e2e-test-images/busybox:1.29-2", busyboxTestImage(t))
	if _, err := h.Images.PullImage(context.Background(), spec(busyboxRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	return h, reg
}

// busyboxTestImage is the image of busyboxRef: busybox and husktest.
func busyboxTestImage(t testing.TB) v1.Image {
	t.Helper()
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	files, err := images.BusyboxFiles(bb)
	if err != nil {
		t.Fatal(err)
	}
	return images.Image(images.Config{Cmd: []string{"sh"}},
		images.Layer(files...),
		images.Layer(images.File{Name: "usr/bin/husktest", Body: images.TestBinary(t), Mode: 0o755}))
}

// podWithLogs runs a pod whose log directory is a temp dir of the test.
func podWithLogs(t *testing.T, h *huskdtest.Huskd, name string, mod func(*runtime.PodSandboxConfig)) (string, *runtime.PodSandboxConfig) {
	t.Helper()
	cfg := huskdtest.PodConfig(name)
	cfg.LogDirectory = t.TempDir()
	if mod != nil {
		mod(cfg)
	}
	return h.RunPod(cfg), cfg
}

func ctrConfig(name string, cmd ...string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata:    &runtime.ContainerMetadata{Name: name},
		Image:       &runtime.ImageSpec{Image: busyboxRef},
		Command:     cmd,
		LogPath:     name + ".log",
		Labels:      map[string]string{"ctr": name},
		Annotations: map[string]string{"a": "b"},
		Linux:       &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: &runtime.NamespaceOption{}}},
	}
}

func createCtr(t *testing.T, h *huskdtest.Huskd, pod string, podCfg *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) string {
	t.Helper()
	id, err := h.Runtime.CreateContainer(context.Background(), pod, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

func runCtr(t *testing.T, h *huskdtest.Huskd, pod string, podCfg *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) string {
	t.Helper()
	id := createCtr(t, h, pod, podCfg, cfg)
	if err := h.Runtime.StartContainer(context.Background(), id); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

func ctrStatus(t *testing.T, h *huskdtest.Huskd, id string) *runtime.ContainerStatus {
	t.Helper()
	resp, err := h.Runtime.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.GetStatus()
}

// ctrPid is the container's init pid from the verbose status.
func ctrPid(t *testing.T, h *huskdtest.Huskd, id string) int {
	t.Helper()
	resp, err := h.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info: %v", err)
	}
	return info.Pid
}

func waitExited(t *testing.T, h *huskdtest.Huskd, id string, timeout time.Duration) *runtime.ContainerStatus {
	t.Helper()
	var st *runtime.ContainerStatus
	huskdtest.Eventually(t, timeout, "container "+id[:12]+" exits", func() bool {
		st = ctrStatus(t, h, id)
		return st.State == runtime.ContainerState_CONTAINER_EXITED
	})
	return st
}

type logLine struct {
	ts      time.Time
	stream  string
	partial bool
	content string
}

// readLog parses a CRI log file.
func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ts, stream, partial, content, err := shim.ParseLogLine(sc.Bytes())
		if err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, logLine{ts, stream, partial, string(content)})
	}
	return out
}

// logText is the full lines of a log, stream prefixed: "stdout hello".
func logText(t *testing.T, path string) string {
	var b strings.Builder
	for _, l := range readLog(t, path) {
		fmt.Fprintf(&b, "%s %s\n", l.stream, l.content)
	}
	return b.String()
}

// runToExit runs a container to its end and returns its status and
// stdout+stderr lines.
func runToExit(t *testing.T, h *huskdtest.Huskd, pod string, podCfg *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) (*runtime.ContainerStatus, string) {
	t.Helper()
	id := runCtr(t, h, pod, podCfg, cfg)
	st := waitExited(t, h, id, 30*time.Second)
	return st, logText(t, filepath.Join(podCfg.LogDirectory, cfg.LogPath))
}
