// Package e2e holds end-to-end scenarios: whole pods as users run them,
// driven only through the CRI socket of a real huskd (k8s.io/cri-client),
// with offline images.
package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// image is what every container of the scenarios runs: Debian's busybox
// and husktest, served by a registry on 127.0.0.1 through a mirror.
const (
	imageRepo = "e2e-test-images/busybox:1.29-2"
	image     = "registry.k8s.io/" + imageRepo
)

// startHuskd starts a huskd with extraConfig (TOML, without [cni] or
// [registry]) that has pulled image.
func startHuskd(t *testing.T, extraConfig string) *huskdtest.Huskd {
	t.Helper()
	huskdtest.Bin(t)
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	files, err := images.BusyboxFiles(bb)
	if err != nil {
		t.Fatal(err)
	}
	reg := images.StartRegistry(t)
	reg.Push(t, imageRepo, images.Image(images.Config{Cmd: []string{"sh"}},
		images.Layer(files...),
		images.Layer(images.File{Name: "usr/bin/husktest", Body: images.TestBinary(t), Mode: 0o755})))
	toml := fmt.Sprintf("[registry]\nconfig_path = %q\n%s", reg.MirrorConfig(t, "registry.k8s.io"), extraConfig)
	h := huskdtest.Start(t, huskdtest.Config(t, toml)...)
	if _, err := h.Images.PullImage(context.Background(), &runtime.ImageSpec{Image: image}, nil, nil); err != nil {
		t.Fatalf("pulling %s: %v", image, err)
	}
	return h
}

// sharedPIDPod is a pod config whose containers share one PID namespace
// with the pause, as kubelet sends it for shareProcessNamespace: true.
func sharedPIDPod(t *testing.T, name string) *runtime.PodSandboxConfig {
	cfg := huskdtest.PodConfig(name)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	return cfg
}

// runCtr creates and starts a container of image in the pod's shared PID
// namespace.
func runCtr(t *testing.T, h *huskdtest.Huskd, pod string, podCfg *runtime.PodSandboxConfig, name string, cmd ...string) string {
	t.Helper()
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD},
		}},
	}
	ctx := context.Background()
	id, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := h.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

// execSync runs cmd in a container and returns its stdout; a non-zero
// exit fails the test.
func execSync(t *testing.T, h *huskdtest.Huskd, ctr string, cmd ...string) string {
	t.Helper()
	stdout, stderr, err := h.Runtime.ExecSync(context.Background(), ctr, cmd, 10*time.Second)
	if err != nil {
		t.Fatalf("ExecSync %q: %v: %s%s", cmd, err, stdout, stderr)
	}
	return string(stdout)
}

// proc is one line of busybox's `ps -o pid,ppid,stat,args`.
type proc struct {
	pid, ppid int
	stat      string // R, S, Z...
	args      string
}

func (p proc) String() string {
	return fmt.Sprintf("%d (parent %d, %s) %s", p.pid, p.ppid, p.stat, p.args)
}

// procs lists the processes a container sees: with a shared PID namespace,
// those of the whole pod.
func procs(t *testing.T, h *huskdtest.Huskd, ctr string) []proc {
	t.Helper()
	out := execSync(t, h, ctr, "ps", "-o", "pid,ppid,stat,args")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var ps []proc
	for _, line := range lines[1:] { // the first is the header
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("ps line %q in:\n%s", line, out)
		}
		pid, err1 := strconv.Atoi(f[0])
		ppid, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("ps line %q in:\n%s", line, out)
		}
		ps = append(ps, proc{pid: pid, ppid: ppid, stat: f[2], args: strings.Join(f[3:], " ")})
	}
	return ps
}

// orphan starts a long sleep in ctr from a shell that exits at once, and
// returns the sleep's pid in the pod. The shell's parent (the shim) is
// outside the pod's PID namespace, and the kernel hands an orphan to no
// reaper outside its namespace: the sleep goes to the namespace's init,
// the pause.
func orphan(t *testing.T, h *huskdtest.Huskd, ctr string) int {
	t.Helper()
	// The sleep must not hold ExecSync's pipes.
	out := execSync(t, h, ctr, "sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the orphan's pid: %q", out)
	}
	for _, p := range procs(t, h, ctr) {
		if p.pid == pid {
			if p.ppid != 1 {
				t.Fatalf("orphan %v: its parent is not the pause (PID 1)", p)
			}
			return pid
		}
	}
	t.Fatalf("orphan %d is not in the pod", pid)
	return 0
}

// killOrphan kills an orphan and waits up to timeout until neither it nor
// any zombie is left in the pod's PID namespace: then the pause has reaped
// it. The error lists what is left.
func killOrphan(t *testing.T, h *huskdtest.Huskd, ctr string, pid int, timeout time.Duration) error {
	t.Helper()
	execSync(t, h, ctr, "kill", strconv.Itoa(pid))
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, p := range procs(t, h, ctr) {
			if p.pid == pid || strings.HasPrefix(p.stat, "Z") {
				left = append(left, p.String())
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after killing orphan %d: %s", timeout, pid, strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
