package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// cdiHuskd starts a huskd whose [cdi] spec_dirs is a temp dir (returned),
// empty: the tests write their spec files into it while huskd runs, as a
// device plugin does just before kubelet's CreateContainer.
func cdiHuskd(t *testing.T) (*huskdtest.Huskd, string) {
	t.Helper()
	dir := t.TempDir()
	h, _ := ctrHuskd(t, fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", dir))
	return h, dir
}

// A container asks for two CDI devices, one through CDI_devices (as kubelet
// passes DRA's and device plugins' devices) and one through a cdi.k8s.io/
// annotation; their spec file's device node, env, mount and createRuntime
// hook all reach it.
func TestCDIDevices(t *testing.T) {
	h, dir := cdiHuskd(t)
	mnt, hooks := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("from-cdi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hooked := filepath.Join(hooks, "hooked")
	spec := fmt.Sprintf(`{"cdiVersion": "0.6.0", "kind": "husk.test/dev",
  "devices": [
    {"name": "null2", "containerEdits": {
      "deviceNodes": [{"path": "/dev/null2", "hostPath": "/dev/null"}],
      "env": ["HUSK_CDI_VAR=injected"],
      "mounts": [{"hostPath": %q, "containerPath": "/cdi-mnt", "options": ["rbind", "ro"]}],
      "hooks": [{"hookName": "createRuntime", "path": "/bin/sh", "args": ["sh", "-c", "touch %s"]}]}},
    {"name": "env2", "containerEdits": {"env": ["HUSK_CDI_ANN=annotated"]}}]}`, mnt, hooked)
	if err := os.WriteFile(filepath.Join(dir, "husk-test.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}

	pod, podCfg := podWithLogs(t, h, "cdi", nil)
	cfg := ctrConfig("cdi", "sleep", "3600")
	cfg.CDIDevices = []*runtime.CDIDevice{{Name: "husk.test/dev=null2"}}
	cfg.Annotations["cdi.k8s.io/husk-test"] = "husk.test/dev=env2,husk.test/dev=null2" // null2 once
	id := runCtr(t, h, pod, podCfg, cfg)

	resp, err := execSync(t, h, id, 10, "sh", "-c", `test -c /dev/null2 && echo "$HUSK_CDI_VAR $HUSK_CDI_ANN" && cat /cdi-mnt/hello && ! touch /cdi-mnt/x`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.GetStdout()); resp.GetExitCode() != 0 || got != "injected annotated\nfrom-cdi\n" {
		t.Errorf("in the container: exit %d, stdout %q, stderr %q; want the device node, both env vars and the read-only mount",
			resp.GetExitCode(), got, resp.GetStderr())
	}
	if _, err := os.Stat(hooked); err != nil {
		t.Errorf("the CDI createRuntime hook did not run: %v", err)
	}
	ctx := context.Background()
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// A device no spec file defines, or a name that is not
// vendor.com/class=name, fails CreateContainer with InvalidArgument naming
// it, and nothing of the container is left.
func TestCDIUnknownDevice(t *testing.T) {
	h, dir := cdiHuskd(t)
	if err := os.WriteFile(filepath.Join(dir, "husk-test.json"),
		[]byte(`{"cdiVersion": "0.6.0", "kind": "husk.test/dev", "devices": [{"name": "env", "containerEdits": {"env": ["A=b"]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "cdi-unknown", nil)
	cases := []struct {
		name  string
		mod   func(*runtime.ContainerConfig)
		names string
	}{
		{"unknown in CDI_devices", func(c *runtime.ContainerConfig) {
			c.CDIDevices = []*runtime.CDIDevice{{Name: "husk.test/dev=env"}, {Name: "husk.test/dev=nope"}}
		}, "husk.test/dev=nope"},
		{"unknown in an annotation", func(c *runtime.ContainerConfig) {
			c.Annotations["cdi.k8s.io/x"] = "husk.test/other=gpu0"
		}, "husk.test/other=gpu0"},
		{"unqualified name", func(c *runtime.ContainerConfig) {
			c.CDIDevices = []*runtime.CDIDevice{{Name: "gpu0"}}
		}, `config.CDI_devices[0].name: unqualified device "gpu0"`},
	}
	for _, c := range cases {
		cfg := ctrConfig("cdi", "sleep", "3600")
		c.mod(cfg)
		_, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
		t.Logf("%s: %v", c.name, err)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.names) {
			t.Errorf("%s: CreateContainer: %v; want InvalidArgument naming %s", c.name, err, c.names)
		}
	}
	if ctrs, err := h.Runtime.ListContainers(ctx, nil); err != nil || len(ctrs) != 0 {
		t.Errorf("ListContainers: %v, %v; want none", ctrs, err)
	}
	if left, _ := filepath.Glob(filepath.Join(h.Root, "containers", "*")); len(left) != 0 {
		t.Errorf("container dirs left: %v", left)
	}
	// The name is free: the same container with a known device is created.
	cfg := ctrConfig("cdi", "sleep", "3600")
	cfg.CDIDevices = []*runtime.CDIDevice{{Name: "husk.test/dev=env"}}
	createCtr(t, h, pod, podCfg, cfg)
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}
