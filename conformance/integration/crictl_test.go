package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// crictl runs the real crictl (cri-tools v1.37.0, built by scripts/deps.sh)
// against h, as a node admin would.
func crictl(t *testing.T, h *huskdtest.Huskd, args ...string) string {
	t.Helper()
	out, err := crictlCmd(t, h, args...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("crictl %v: %v\n%s%s", args, err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

func TestCrictl(t *testing.T) {
	if os.Getenv("HUSK_CRICTL") == "" {
		t.Skip("HUSK_CRICTL is not set: run through `make test`, which builds crictl")
	}
	h := huskdtest.Start(t)
	if v := crictl(t, h, "version"); !strings.Contains(v, "RuntimeName:  husk") || !strings.Contains(v, "RuntimeApiVersion:  v1") {
		t.Errorf("crictl version:\n%s", v)
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(crictl(t, h, "info")), &info); err != nil || len(info.Status.Conditions) != 2 || info.Config["root"] != h.Root {
		t.Errorf("crictl info: %+v, %v", info, err)
	}

	dir := t.TempDir()
	modes := map[string]string{
		"pod":           `{}`,
		"host-network":  `{"network": 2}`,
		"host-pid":      `{"pid": 2}`,
		"host-ipc":      `{"ipc": 2}`,
		"pid-container": `{"pid": 1}`,
		"all-host":      `{"network": 2, "pid": 2, "ipc": 2}`,
	}
	for name, opts := range modes {
		t.Run(name, func(t *testing.T) {
			cfg := filepath.Join(dir, name+".json")
			pod := `{"metadata": {"name": "crictl-` + name + `", "namespace": "husktest", "uid": "u-` + name + `"},
				"hostname": "crictl-` + name + `", "log_directory": "/tmp",
				"linux": {"security_context": {"namespace_options": ` + opts + `}}}`
			if err := os.WriteFile(cfg, []byte(pod), 0o644); err != nil {
				t.Fatal(err)
			}
			id := crictl(t, h, "runp", cfg)
			if out := crictl(t, h, "pods", "--id", id[:13], "--state", "ready", "-q"); out != id {
				t.Errorf("crictl pods --id %s --state ready: %q, want %s", id[:13], out, id)
			}
			var insp struct {
				Status struct {
					State string `json:"state"`
				} `json:"status"`
				Info struct {
					Pid int `json:"pid"`
				} `json:"info"`
			}
			if err := json.Unmarshal([]byte(crictl(t, h, "inspectp", id)), &insp); err != nil || insp.Status.State != "SANDBOX_READY" || !huskdtest.Alive(insp.Info.Pid) {
				t.Errorf("crictl inspectp: %+v, %v", insp, err)
			}
			crictl(t, h, "stopp", id)
			if out := crictl(t, h, "pods", "--id", id, "--state", "notready", "-q"); out != id {
				t.Errorf("after stopp: %q", out)
			}
			crictl(t, h, "rmp", id)
			if out := crictl(t, h, "pods", "-q"); out != "" {
				t.Errorf("after rmp: pods %q", out)
			}
			if huskdtest.Alive(insp.Info.Pid) {
				t.Errorf("pause %d alive after rmp", insp.Info.Pid)
			}
		})
	}
}

func TestCrictlImages(t *testing.T) {
	if os.Getenv("HUSK_CRICTL") == "" {
		t.Skip("HUSK_CRICTL is not set: run through `make test`, which builds crictl")
	}
	h, reg := imageHuskd(t, "")
	reg.Push(t, "e2e-test-images/busybox:1.29-2", busyboxImage(t))

	out := crictl(t, h, "pull", "registry.k8s.io/e2e-test-images/busybox:1.29-2")
	if !strings.Contains(out, "Image is up to date for sha256:") {
		t.Errorf("crictl pull: %q", out)
	}
	id := strings.TrimSpace(out[strings.Index(out, "sha256:"):])
	if out := crictl(t, h, "images"); !strings.Contains(out, "registry.k8s.io/e2e-test-images/busybox") || !strings.Contains(out, "1.29-2") {
		t.Errorf("crictl images:\n%s", out)
	}
	if out := crictl(t, h, "images", "-q"); out != id {
		t.Errorf("crictl images -q: %q, want %s", out, id)
	}
	var insp struct {
		Status struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
		} `json:"status"`
		Info struct {
			ImageSpec struct {
				Architecture string `json:"architecture"`
			} `json:"imageSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(crictl(t, h, "inspecti", "registry.k8s.io/e2e-test-images/busybox:1.29-2")), &insp); err != nil ||
		insp.Status.ID != id || insp.Info.ImageSpec.Architecture != "amd64" {
		t.Errorf("crictl inspecti: %+v, %v", insp, err)
	}
	var fsinfo struct {
		Status struct {
			ImageFilesystems []struct {
				UsedBytes struct {
					Value string `json:"value"`
				} `json:"usedBytes"`
			} `json:"imageFilesystems"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(crictl(t, h, "imagefsinfo")), &fsinfo); err != nil || len(fsinfo.Status.ImageFilesystems) != 1 || fsinfo.Status.ImageFilesystems[0].UsedBytes.Value == "0" {
		t.Errorf("crictl imagefsinfo: %+v, %v", fsinfo, err)
	}
	crictl(t, h, "rmi", id[7:19])
	if out := crictl(t, h, "images", "-q"); out != "" {
		t.Errorf("after crictl rmi: %q", out)
	}
}

func TestCrictlContainers(t *testing.T) {
	if os.Getenv("HUSK_CRICTL") == "" {
		t.Skip("HUSK_CRICTL is not set: run through `make test`, which builds crictl")
	}
	h, _ := ctrHuskd(t, "")
	dir := t.TempDir()
	podJSON := filepath.Join(dir, "pod.json")
	ctrJSON := filepath.Join(dir, "ctr.json")
	_ = os.WriteFile(podJSON, []byte(`{"metadata": {"name": "crictl-ctr", "namespace": "husktest", "uid": "u-crictl-ctr"},
		"log_directory": "`+dir+`", "linux": {}}`), 0o644)
	_ = os.WriteFile(ctrJSON, []byte(`{"metadata": {"name": "talker"}, "image": {"image": "`+busyboxRef+`"},
		"command": ["sh", "-c", "echo hello from crictl; while :; do sleep 0.1; done"], "log_path": "talker.log", "linux": {}}`), 0o644)

	pod := crictl(t, h, "runp", podJSON)
	id := crictl(t, h, "create", pod, ctrJSON, podJSON)
	if out := crictl(t, h, "ps", "-a", "-q"); out != id {
		t.Errorf("crictl ps -a -q: %q, want %s", out, id)
	}
	crictl(t, h, "start", id)
	if out := crictl(t, h, "ps", "--state", "running", "-q"); out != id {
		t.Errorf("crictl ps --state running: %q", out)
	}
	var insp struct {
		Status struct {
			State   string `json:"state"`
			ImageID string `json:"imageId"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(crictl(t, h, "inspect", id)), &insp); err != nil || insp.Status.State != "CONTAINER_RUNNING" || insp.Info.Pid == 0 {
		t.Errorf("crictl inspect: %+v, %v", insp, err)
	}
	huskdtest.Eventually(t, 30*time.Second, "crictl logs shows the line", func() bool {
		return strings.Contains(crictl(t, h, "logs", id), "hello from crictl")
	})
	if out := crictl(t, h, "stats", "-o", "json", id); !strings.Contains(out, `"cpu"`) || !strings.Contains(out, id) {
		t.Errorf("crictl stats: %s", out)
	}
	crictl(t, h, "stop", "--timeout", "1", id)
	if out := crictl(t, h, "ps", "--state", "exited", "-q"); out != id {
		t.Errorf("after crictl stop: %q", out)
	}
	crictl(t, h, "rm", id)
	if out := crictl(t, h, "ps", "-a", "-q"); out != "" {
		t.Errorf("after crictl rm: %q", out)
	}
	// crictl logs -f follows a container's log until it exits.
	shortJSON := filepath.Join(dir, "short.json")
	_ = os.WriteFile(shortJSON, []byte(`{"metadata": {"name": "short"}, "image": {"image": "`+busyboxRef+`"},
		"command": ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done"], "log_path": "short.log", "linux": {}}`), 0o644)
	short := crictl(t, h, "create", pod, shortJSON, podJSON)
	crictl(t, h, "start", short)
	if out := crictl(t, h, "logs", "-f", short); out != "line 1\nline 2\nline 3" {
		t.Errorf("crictl logs -f: %q", out)
	}
	crictl(t, h, "rmp", "-f", pod)
}
