package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestZZStraceCreate(t *testing.T) {
	reg := images.StartRegistry(t)
	bb, _ := images.BusyboxPath()
	img, _ := images.Busybox(bb, images.Config{})
	reg.Push(t, "e2e-test-images/busybox:1.29-2", img)
	hostsDir := reg.MirrorConfig(t, "registry.k8s.io")
	h := huskdtest.Start(t, append(huskdtest.Config(t, fmt.Sprintf("[registry]\nconfig_path = %q\n", hostsDir)), "-v", "0")...)
	ctx := context.Background()
	if _, err := h.Images.PullImage(ctx, &runtime.ImageSpec{Image: busyboxRef}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cfg := hostNetworkPod("st")
	pod, err := h.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Runtime.StopPodSandbox(ctx, pod); _ = h.Runtime.RemovePodSandbox(ctx, pod) })
	for i := 0; i < 3; i++ {
		id, _ := h.Runtime.CreateContainer(ctx, pod, sleeper(fmt.Sprint("w", i)), cfg)
		h.Runtime.StartContainer(ctx, id)
	}
	st, _ := h.Runtime.PodSandboxStatus(ctx, pod, true)
	info := st.GetInfo()["info"]
	var shim int
	fmt.Sscanf(info[strings.Index(info, `"shimPid":`)+len(`"shimPid":`):], "%d", &shim)
	cmd := exec.Command("strace", "-f", "-tt", "-o", "/tmp/strace-create.txt", "-p", fmt.Sprint(shim), "-p", fmt.Sprint(h.PID()))
	cmd.Start()
	time.Sleep(time.Second)
	t0 := time.Now()
	id, err := h.Runtime.CreateContainer(ctx, pod, sleeper("traced"), cfg)
	t1 := time.Now()
	err2 := h.Runtime.StartContainer(ctx, id)
	t.Logf("create under strace: %v start %v %v %v", t1.Sub(t0), time.Since(t1), err, err2)
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}
