package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
	"github.com/huskrt/husk/internal/faults"
)

// killRun is one crash: the huskd killed at a fault point and started
// again, and what the scenario made on it.
type killRun struct {
	t      *testing.T
	h      *huskdtest.Huskd
	point  string
	pod    string
	podCfg *runtime.PodSandboxConfig
	ctr    string
}

// killScenario is a call and its setup. do makes what the call needs,
// then the call, which huskd dies in; after the restart, check asserts
// the state is exact, repeats the call and removes what is left.
type killScenario struct {
	points []string
	pulls  bool // the call is PullImage: the busybox image is not pulled first
	do     func(k *killRun) error
	check  func(k *killRun)
}

// trapCmd exits 7 on the stop signal: an exit code no kill or default
// makes up.
var trapCmd = []string{"sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"}

const killImage = "registry.k8s.io/test/killpoints:1"

// TestKillPoints crashes huskd (SIGKILL, from a fault point of
// internal/faults) inside each call that creates or destroys something,
// after each step that does, and checks that the huskd started after it
// reports exactly what is there, that the call can be made again, and
// that nothing is left once everything is removed (huskdtest's cleanup:
// shims, processes, cgroups, mounts, veths, IP leases, iptables rules;
// here: image temp files and leases). containerd#12600: a containerd
// restarted during StopContainer kept reporting Running a container that
// had exited, and its pod hung Terminating.
func TestKillPoints(t *testing.T) {
	bin := huskdtest.Bin(t)
	out, _ := exec.Command(filepath.Join(bin, "huskd"), "--version").Output()
	if !strings.Contains(string(out), "fault points: compiled in") {
		t.Skipf("%s/huskd has no fault points: `make race-build` builds bin-race/huskd with them", bin)
	}
	reg := images.StartRegistry(t)
	reg.Push(t, "e2e-test-images/busybox:1.29-2", busyboxTestImage(t))
	reg.Push(t, "test/killpoints:1", images.Image(images.Config{},
		images.Layer(images.File{Name: "a", Body: []byte("first layer")}),
		images.Layer(images.File{Name: "b", Body: []byte(strings.Repeat("b", 64<<10))})))
	mirrors := reg.MirrorConfig(t, "registry.k8s.io", "docker.io")
	config := fmt.Sprintf("[registry]\nconfig_path = %q\n", mirrors)
	// The busybox image is pulled once and its store copied into each
	// scenario's root: a pull costs ~2 s of the race build, per scenario.
	tmpl := huskdtest.Start(t, huskdtest.Config(t, config)...)
	if _, err := tmpl.Images.PullImage(context.Background(), spec(busyboxRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	tmpl.Stop()

	// A second crash during the recovery from the first: recovery's own
	// teardown passes through the removals' steps.
	duringRecovery := map[string]string{
		"RunPodSandbox/after-network":       "RemovePodSandbox/after-unpin",
		"RunPodSandbox/after-pause":         "RemovePodSandbox/after-state-dir",
		"CreateContainer/after-shim-create": "RemoveContainer/after-unmount",
		"CreateContainer/after-bundle":      "RemoveContainer/after-record",
	}
	for _, sc := range killScenarios() {
		for _, point := range sc.points {
			name := point
			if again := duringRecovery[point]; again != "" {
				name += " then " + again
			}
			t.Run(name, func(t *testing.T) {
				h := huskdtest.Prepare(t, huskdtest.Config(t, config)...)
				if !sc.pulls {
					if err := os.MkdirAll(h.Root, 0o700); err != nil {
						t.Fatal(err)
					}
					if out, err := exec.Command("cp", "-a", filepath.Join(tmpl.Root, "images"), h.Root).CombinedOutput(); err != nil {
						t.Fatalf("copying the image store: %v: %s", err, out)
					}
				}
				h.Env = []string{faults.EnvVar + "=" + point}
				h.Launch()
				k := &killRun{t: t, h: h, point: point}
				err := sc.do(k)
				if err == nil {
					t.Fatalf("the call succeeded: huskd did not reach %s", point)
				}
				h.WaitExit(30 * time.Second)
				if !strings.Contains(h.Log(), "Fault point reached") {
					t.Fatalf("huskd died in the call (%v), not at the fault point:\n%s", err, h.Log())
				}
				if again := duringRecovery[point]; again != "" {
					h.Env = []string{faults.EnvVar + "=" + again}
					h.LaunchNoWait()
					h.WaitExit(60 * time.Second)
					if n := strings.Count(h.Log(), "Fault point reached"); n != 2 {
						t.Fatalf("huskd did not die at %s during its recovery:\n%s", again, h.Log())
					}
				}
				h.Env = nil
				h.Launch()
				sc.check(k)
				removeAllAndCheckImages(t, h)
			})
		}
	}
}

func killScenarios() []killScenario {
	bg := context.Background()
	return []killScenario{{
		points: []string{
			"RunPodSandbox/after-record", "RunPodSandbox/after-shim-launch", "RunPodSandbox/after-pins",
			"RunPodSandbox/after-pause", "RunPodSandbox/after-network", "RunPodSandbox/after-ready",
		},
		do: func(k *killRun) error {
			k.podCfg = huskdtest.PodConfig("kp")
			k.podCfg.LogDirectory = k.t.TempDir()
			withHostPort(k.t)(k.podCfg)
			_, err := k.h.Runtime.RunPodSandbox(bg, k.podCfg, "")
			return err
		},
		check: func(k *killRun) {
			pods, err := k.h.Runtime.ListPodSandbox(bg, nil)
			if err != nil {
				k.t.Fatal(err)
			}
			// A pod is there when its record said ready; else nothing of
			// it is (recovery tears down a record still creating).
			want := 0
			if k.point == "RunPodSandbox/after-ready" {
				want = 1
			}
			if len(pods) != want {
				k.t.Fatalf("%d pods after the restart, want %d: %v", len(pods), want, pods)
			}
			if want == 1 && pods[0].State != runtime.PodSandboxState_SANDBOX_READY {
				k.t.Errorf("the pod is %v, want ready", pods[0].State)
			}
			id, err := k.h.Runtime.RunPodSandbox(bg, k.podCfg, "")
			if want == 1 && status.Code(err) == codes.AlreadyExists && strings.Contains(err.Error(), pods[0].Id) {
				// kubelet finds the ready pod in ListPodSandbox and uses it.
				id, err = pods[0].Id, nil
			}
			if err != nil {
				k.t.Fatalf("RunPodSandbox again: %v", err)
			}
			k.pod = id
			k.runsAContainer()
		},
	}, {
		points: []string{
			"CreateContainer/after-lease", "CreateContainer/after-rootfs", "CreateContainer/after-image-volume", "CreateContainer/after-bundle",
			"CreateContainer/after-shim-create", "CreateContainer/after-record",
		},
		do: func(k *killRun) error {
			k.pod, k.podCfg = podWithLogs(k.t, k.h, "kp", nil)
			_, err := k.h.Runtime.CreateContainer(bg, k.pod, withImageVolume(ctrConfig("c", "sh", "-c", "exit 3")), k.podCfg)
			return err
		},
		check: func(k *killRun) {
			ctrs := k.containers()
			want := 0
			if k.point == "CreateContainer/after-record" {
				want = 1
			}
			if len(ctrs) != want {
				k.t.Fatalf("%d containers after the restart, want %d: %v", len(ctrs), want, ctrs)
			}
			if want == 1 && ctrs[0].State != runtime.ContainerState_CONTAINER_CREATED {
				k.t.Errorf("the container is %v, want created", ctrs[0].State)
			}
			id, err := k.h.Runtime.CreateContainer(bg, k.pod, withImageVolume(ctrConfig("c", "sh", "-c", "exit 3")), k.podCfg)
			if want == 1 && status.Code(err) == codes.AlreadyExists && strings.Contains(err.Error(), ctrs[0].Id) {
				id, err = ctrs[0].Id, nil
			}
			if err != nil {
				k.t.Fatalf("CreateContainer again: %v", err)
			}
			if err := k.h.Runtime.StartContainer(bg, id); err != nil {
				k.t.Fatal(err)
			}
			if st := waitExited(k.t, k.h, id, 30*time.Second); st.ExitCode != 3 {
				k.t.Errorf("exit %d, want 3", st.ExitCode)
			}
		},
	}, {
		points: []string{"StartContainer/after-shim-start"},
		do: func(k *killRun) error {
			k.pod, k.podCfg = podWithLogs(k.t, k.h, "kp", nil)
			k.ctr = createCtr(k.t, k.h, k.pod, k.podCfg, ctrConfig("trap", trapCmd...))
			return k.h.Runtime.StartContainer(bg, k.ctr)
		},
		check: func(k *killRun) {
			if st := ctrStatus(k.t, k.h, k.ctr); st.State != runtime.ContainerState_CONTAINER_RUNNING {
				k.t.Fatalf("the container is %v, want running", st.State)
			}
			k.stopsWith7()
		},
	}, {
		points: []string{"StopContainer/after-shim-stop", "StopContainer/after-update"},
		do: func(k *killRun) error {
			k.runningTrap()
			return k.h.Runtime.StopContainer(bg, k.ctr, 30)
		},
		check: func(k *killRun) {
			// The exit the shim saw, not one huskd made up.
			if st := ctrStatus(k.t, k.h, k.ctr); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
				k.t.Fatalf("the container is %v with exit %d, want exited 7", st.State, st.ExitCode)
			}
			k.stopsWith7()
			if err := k.h.Runtime.RemoveContainer(bg, k.ctr); err != nil {
				k.t.Fatal(err)
			}
		},
	}, {
		points: []string{"RemoveContainer/after-shim-remove", "RemoveContainer/after-unmount", "RemoveContainer/after-record"},
		do: func(k *killRun) error {
			k.pod, k.podCfg = podWithLogs(k.t, k.h, "kp", nil)
			k.ctr = runCtr(k.t, k.h, k.pod, k.podCfg, ctrConfig("c", "sh", "-c", "exit 3"))
			waitExited(k.t, k.h, k.ctr, 30*time.Second)
			return k.h.Runtime.RemoveContainer(bg, k.ctr)
		},
		check: func(k *killRun) {
			ctrs := k.containers()
			if k.point == "RemoveContainer/after-record" {
				if len(ctrs) != 0 {
					k.t.Errorf("containers after a restart that followed the removal of their record: %v", ctrs)
				}
			} else if st := ctrStatus(k.t, k.h, k.ctr); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 {
				k.t.Errorf("the container is %v with exit %d, want exited 3", st.State, st.ExitCode)
			}
			if err := k.h.Runtime.RemoveContainer(bg, k.ctr); err != nil {
				k.t.Fatalf("RemoveContainer again: %v", err)
			}
			if ctrs := k.containers(); len(ctrs) != 0 {
				k.t.Errorf("containers after RemoveContainer: %v", ctrs)
			}
		},
	}, {
		points: []string{"StopPodSandbox/after-shim-stop", "StopPodSandbox/after-network", "StopPodSandbox/after-shm"},
		do: func(k *killRun) error {
			k.runningTrap()
			return k.h.Runtime.StopPodSandbox(bg, k.pod)
		},
		check: func(k *killRun) {
			st, _ := k.h.PodInfo(k.pod)
			if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
				k.t.Errorf("the pod is %v, want not ready", st.State)
			}
			// The shim's stop kills the containers (SIGKILL): 137, as
			// the shim recorded it.
			if c := ctrStatus(k.t, k.h, k.ctr); c.State != runtime.ContainerState_CONTAINER_EXITED || c.ExitCode != 137 {
				k.t.Errorf("the container is %v with exit %d (%s), want exited 137", c.State, c.ExitCode, c.Reason)
			}
			if err := k.h.Runtime.StopPodSandbox(bg, k.pod); err != nil {
				k.t.Fatalf("StopPodSandbox again: %v", err)
			}
			if c := ctrStatus(k.t, k.h, k.ctr); c.ExitCode != 137 {
				k.t.Errorf("exit %d after the second stop, want 137", c.ExitCode)
			}
		},
	}, {
		points: []string{
			"RemovePodSandbox/after-containers", "RemovePodSandbox/after-stop",
			"RemovePodSandbox/after-unpin", "RemovePodSandbox/after-state-dir",
		},
		do: func(k *killRun) error {
			k.runningTrap()
			return k.h.Runtime.RemovePodSandbox(bg, k.pod)
		},
		check: func(k *killRun) {
			if ctrs := k.containers(); len(ctrs) != 0 {
				// RemovePodSandbox removes the containers first.
				k.t.Errorf("containers after a restart in RemovePodSandbox: %v", ctrs)
			}
			if err := k.h.Runtime.RemovePodSandbox(bg, k.pod); err != nil {
				k.t.Fatalf("RemovePodSandbox again: %v", err)
			}
			if pods, _ := k.h.Runtime.ListPodSandbox(bg, nil); len(pods) != 0 {
				k.t.Errorf("pods after RemovePodSandbox: %v", pods)
			}
		},
	}, {
		points: []string{"PullImage/blob-in-tmp", "PullImage/layer-in-tmp", "PullImage/before-commit", "PullImage/after-commit"},
		pulls:  true,
		do: func(k *killRun) error {
			_, err := k.h.Images.PullImage(bg, spec(killImage), nil, nil)
			return err
		},
		check: func(k *killRun) {
			imgs, err := k.h.Images.ListImages(bg, nil)
			if err != nil {
				k.t.Fatal(err)
			}
			want := 0
			if k.point == "PullImage/after-commit" {
				want = 1
			}
			if len(imgs) != want {
				k.t.Fatalf("%d images after the restart, want %d: %v", len(imgs), want, imgs)
			}
			if want == 0 {
				// A pull that did not finish leaves nothing.
				for _, d := range []string{"layers", "blobs/sha256"} {
					if left, _ := os.ReadDir(filepath.Join(k.h.Root, "images", d)); len(left) != 0 {
						k.t.Errorf("images/%s after the restart: %v", d, left)
					}
				}
			}
			id, err := k.h.Images.PullImage(bg, spec(killImage), nil, nil)
			if err != nil {
				k.t.Fatalf("PullImage again: %v", err)
			}
			if err := k.h.Images.RemoveImage(bg, spec(id)); err != nil {
				k.t.Fatal(err)
			}
		},
	}}
}

// runningTrap runs a pod with a container that exits 7 on SIGTERM, and
// waits until its trap is set.
func (k *killRun) runningTrap() {
	k.t.Helper()
	k.pod, k.podCfg = podWithLogs(k.t, k.h, "kp", withHostPort(k.t))
	k.ctr = runCtr(k.t, k.h, k.pod, k.podCfg, ctrConfig("trap", trapCmd...))
	huskdtest.Eventually(k.t, 30*time.Second, "the trap is set", func() bool {
		return strings.Contains(logText(k.t, filepath.Join(k.podCfg.LogDirectory, "trap.log")), "ready")
	})
}

// withImageVolume mounts the busybox image into a container too: the
// volume holds a lease of its own.
func withImageVolume(c *runtime.ContainerConfig) *runtime.ContainerConfig {
	c.Mounts = append(c.Mounts, &runtime.Mount{ContainerPath: "/vol", Image: &runtime.ImageSpec{Image: busyboxRef}, Readonly: true})
	return c
}

// withHostPort gives a pod a host port, so that its network has iptables
// rules (portmap's) to leave behind.
func withHostPort(t *testing.T) func(*runtime.PodSandboxConfig) {
	return func(c *runtime.PodSandboxConfig) {
		c.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: int32(huskdtest.FreePort(t)), HostIp: "127.0.0.1"}}
	}
}

// stopsWith7 stops the trap container (again) and checks its exit.
func (k *killRun) stopsWith7() {
	k.t.Helper()
	huskdtest.Eventually(k.t, 30*time.Second, "the trap is set", func() bool {
		return strings.Contains(logText(k.t, filepath.Join(k.podCfg.LogDirectory, "trap.log")), "ready")
	})
	if err := k.h.Runtime.StopContainer(context.Background(), k.ctr, 30); err != nil {
		k.t.Fatalf("StopContainer: %v", err)
	}
	if st := ctrStatus(k.t, k.h, k.ctr); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
		k.t.Errorf("the container is %v with exit %d, want exited 7", st.State, st.ExitCode)
	}
}

// runsAContainer shows the pod works: a container runs in it to its exit.
func (k *killRun) runsAContainer() {
	k.t.Helper()
	if st, _ := runToExit(k.t, k.h, k.pod, k.podCfg, ctrConfig("c", "sh", "-c", "exit 3")); st.ExitCode != 3 {
		k.t.Errorf("exit %d, want 3", st.ExitCode)
	}
}

func (k *killRun) containers() []*runtime.Container {
	k.t.Helper()
	ctrs, err := k.h.Runtime.ListContainers(context.Background(), nil)
	if err != nil {
		k.t.Fatal(err)
	}
	return ctrs
}

// removeAllAndCheckImages removes every pod, then checks what huskdtest's
// cleanup does not: no image download or unpack left in the store's
// temporary directory, no lease of a container that is gone.
func removeAllAndCheckImages(t *testing.T, h *huskdtest.Huskd) {
	t.Helper()
	ctx := context.Background()
	pods, err := h.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := h.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
			t.Errorf("removing pod %s: %v", p.Id, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(h.Root, "images", "tmp")); len(left) != 0 {
		t.Errorf("images/tmp after everything was removed: %v", left)
	}
	b, err := os.ReadFile(filepath.Join(h.Root, "images", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Leases map[string][]string `json:"leases"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Leases) != 0 {
		t.Errorf("image leases after every container was removed: %v", idx.Leases)
	}
	// Nothing is left to stop gracefully (which takes huskd a second);
	// huskdtest's cleanup checks the node all the same.
	h.Kill()
}

// TestReleaseHuskdHasNoFaultPoints: only the race build (bin-race/) may
// crash itself on $HUSK_FAULT_POINT; a release huskd has no fault point
// compiled in, so the variable cannot reach it.
func TestReleaseHuskdHasNoFaultPoints(t *testing.T) {
	bin := os.Getenv("HUSK_RELEASE_BIN")
	if bin == "" {
		t.Skip("HUSK_RELEASE_BIN is not set: run through `make test`")
	}
	out, err := exec.Command(filepath.Join(bin, "huskd"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "fault points") {
		t.Errorf("%s/huskd --version: %q: a release build has fault points", bin, out)
	}
	mod, err := exec.Command("go", "version", "-m", filepath.Join(bin, "huskd")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mod), "husk_faults") {
		t.Errorf("%s/huskd was built with the husk_faults tag:\n%s", bin, mod)
	}
}

// TestKilledWhileAContainerStops is containerd#12600 itself: huskd dies
// while the shim waits for a container it sent SIGTERM to (timed by the
// container's own log line, printed by its trap), and the container
// exits while huskd is down, or after it is back. Either way the huskd
// after the restart reports the exit the container made, and the pod's
// removal completes.
func TestKilledWhileAContainerStops(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	for _, exitWhileDown := range []bool{true, false} {
		t.Run(fmt.Sprintf("exit while down %v", exitWhileDown), func(t *testing.T) {
			bg := context.Background()
			pod, podCfg := podWithLogs(t, h, "stopping", nil)
			release := t.TempDir()
			cfg := ctrConfig("slow", "sh", "-c", "trap 'echo term; while [ ! -e /release/go ]; do sleep 0.05; done; exit 7' TERM; echo ready; while :; do sleep 0.1; done")
			cfg.Mounts = []*runtime.Mount{{ContainerPath: "/release", HostPath: release}}
			id := runCtr(t, h, pod, podCfg, cfg)
			pid := ctrPid(t, h, id)
			logPath := filepath.Join(podCfg.LogDirectory, "slow.log")
			huskdtest.Eventually(t, 30*time.Second, "the trap is set", func() bool {
				return strings.Contains(logText(t, logPath), "ready")
			})
			stopped := make(chan error, 1)
			rt := h.Runtime
			go func() { stopped <- rt.StopContainer(bg, id, 60) }()
			huskdtest.Eventually(t, 30*time.Second, "the container got SIGTERM", func() bool {
				return strings.Contains(logText(t, logPath), "term")
			})
			h.Kill()
			if err := <-stopped; err == nil {
				t.Fatal("StopContainer returned nil from a huskd killed before the container exited")
			}
			goFile := filepath.Join(release, "go")
			if exitWhileDown {
				if err := os.WriteFile(goFile, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				// The shim, which outlives huskd, sees the exit.
				huskdtest.Eventually(t, 30*time.Second, "the container exits", func() bool { return !huskdtest.Alive(pid) })
			}
			h.Launch()
			if !exitWhileDown {
				if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
					t.Fatalf("the container is %v before it exited, want running", st.State)
				}
				if err := os.WriteFile(goFile, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if st := waitExited(t, h, id, 30*time.Second); st.ExitCode != 7 || st.Reason != "Error" {
				t.Errorf("exit %d reason %q, want 7 Error", st.ExitCode, st.Reason)
			}
			if err := h.Runtime.StopContainer(bg, id, 60); err != nil {
				t.Errorf("StopContainer again: %v", err)
			}
			if err := h.Runtime.RemovePodSandbox(bg, pod); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
		})
	}
}
