package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

func TestContainerLifecycle(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "life", nil)
	cfg := ctrConfig("web", "sh", "-c", "echo hello; echo oops >&2; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done")
	cfg.Envs = []*runtime.KeyValue{{Key: "GREETING", Value: []byte("hi")}}
	id := createCtr(t, h, pod, podCfg, cfg)

	st := ctrStatus(t, h, id)
	imageID := imageIDOf(t, h, busyboxRef)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 {
		t.Errorf("after create: state %v created %d started %d", st.State, st.CreatedAt, st.StartedAt)
	}
	if st.ImageRef != imageID || st.ImageId != imageID || st.Image.GetImage() != busyboxRef {
		t.Errorf("image %v ref %s id %s, want image %s with ref and id %s", st.Image, st.ImageRef, st.ImageId, busyboxRef, imageID)
	}
	if st.Labels["ctr"] != "web" || st.Annotations["a"] != "b" || st.Metadata.GetName() != "web" {
		t.Errorf("metadata %v labels %v annotations %v", st.Metadata, st.Labels, st.Annotations)
	}
	if want := filepath.Join(podCfg.LogDirectory, "web.log"); st.LogPath != want {
		t.Errorf("log path %q, want %q", st.LogPath, want)
	}

	if err := h.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	st = ctrStatus(t, h, id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt < st.CreatedAt {
		t.Errorf("after start: state %v created %d started %d", st.State, st.CreatedAt, st.StartedAt)
	}
	if err := h.Runtime.StartContainer(ctx, id); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second start: %v, want FailedPrecondition", err)
	}
	huskdtest.Eventually(t, 30*time.Second, "both lines are logged", func() bool {
		l := logText(t, st.LogPath)
		return strings.Contains(l, "stdout hello\n") && strings.Contains(l, "stderr oops\n")
	})

	// Listing, with every filter.
	for name, f := range map[string]*runtime.ContainerFilter{
		"id prefix":  {Id: id[:10]},
		"state":      {State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}},
		"pod":        {PodSandboxId: pod},
		"pod prefix": {PodSandboxId: pod[:8]},
		"labels":     {LabelSelector: map[string]string{"ctr": "web"}},
	} {
		l, err := h.Runtime.ListContainers(ctx, f)
		if err != nil || len(l) != 1 || l[0].Id != id || l[0].PodSandboxId != pod || l[0].ImageId != imageID {
			t.Errorf("ListContainers by %s: %v, %v", name, l, err)
		}
	}
	if l, _ := h.Runtime.ListContainers(ctx, &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}}); len(l) != 0 {
		t.Errorf("exited filter: %v", l)
	}

	// Stop: SIGTERM, which the container handles, within the timeout.
	if err := h.Runtime.StopContainer(ctx, id, 10); err != nil {
		t.Fatal(err)
	}
	st = ctrStatus(t, h, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != "Completed" || st.FinishedAt < st.StartedAt {
		t.Errorf("after stop: %v exit %d reason %q finished %d", st.State, st.ExitCode, st.Reason, st.FinishedAt)
	}
	if !strings.Contains(logText(t, st.LogPath), "stdout bye\n") {
		t.Errorf("the container's last words are missing from its log:\n%s", logText(t, st.LogPath))
	}
	for i := 0; i < 2; i++ {
		if err := h.Runtime.StopContainer(ctx, id, 10); err != nil {
			t.Errorf("stop again: %v", err)
		}
	}

	if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Runtime.ContainerStatus(ctx, id, false); status.Code(err) != codes.NotFound {
		t.Errorf("status after remove: %v, want NotFound", err)
	}
	unknown := strings.Repeat("cd", 32)
	for _, call := range []func() error{
		func() error { return h.Runtime.RemoveContainer(ctx, id) },
		func() error { return h.Runtime.StopContainer(ctx, unknown, 1) },
		func() error { return h.Runtime.RemoveContainer(ctx, unknown) },
	} {
		if err := call(); err != nil {
			t.Errorf("idempotent stop/remove: %v", err)
		}
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left after removing the container and its pod: %v", leaks)
	}
}

func imageIDOf(t *testing.T, h *huskdtest.Huskd, ref string) string {
	t.Helper()
	resp, err := h.Images.ImageStatus(context.Background(), spec(ref), false)
	if err != nil || resp.GetImage() == nil {
		t.Fatalf("ImageStatus %s: %v %v", ref, resp, err)
	}
	return resp.GetImage().Id
}

func TestStopTimeoutThenKill(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "stopper", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("stubborn", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"))
	huskdtest.Eventually(t, 30*time.Second, "the trap is set", func() bool {
		return strings.Contains(logText(t, filepath.Join(podCfg.LogDirectory, "stubborn.log")), "ready")
	})
	start := time.Now()
	if err := h.Runtime.StopContainer(context.Background(), id, 2); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st := ctrStatus(t, h, id)
	if st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("exit %d reason %q, want 137 Error (SIGKILL)", st.ExitCode, st.Reason)
	}
	if took < 2*time.Second {
		t.Errorf("stopped after %s: the grace period is 2s", took)
	}
	// The image's STOPSIGNAL, or the CRI's stop_signal, goes first.
	cfg := ctrConfig("usr1", "sh", "-c", "trap 'echo got USR1; exit 3' USR1; echo ready; while :; do sleep 0.1; done")
	cfg.StopSignal = runtime.Signal_SIGNAL_SIGUSR1
	id = runCtr(t, h, pod, podCfg, cfg)
	huskdtest.Eventually(t, 30*time.Second, "the trap is set", func() bool {
		return strings.Contains(logText(t, filepath.Join(podCfg.LogDirectory, "usr1.log")), "ready")
	})
	if err := h.Runtime.StopContainer(context.Background(), id, 10); err != nil {
		t.Fatal(err)
	}
	if st := ctrStatus(t, h, id); st.ExitCode != 3 || st.StopSignal != runtime.Signal_SIGNAL_SIGUSR1 {
		t.Errorf("exit %d stop signal %v, want 3 after SIGUSR1", st.ExitCode, st.StopSignal)
	}
}

func TestContainerSharesThePodPIDNamespace(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "pidpod", nil)
	_, info := h.PodInfo(pod)
	// The subshell forks the sleep, prints its pid and exits: by the time
	// $(...) returns, the sleep is orphaned and re-parented to PID 1,
	// whether or not it has exec'd yet, so no guess at timing is needed.
	// Killed, it leaves a zombie for the pause to reap.
	st, out := runToExit(t, h, pod, podCfg, ctrConfig("ps", "sh", "-c",
		"tr '\\0' ' ' < /proc/1/cmdline; echo; o=$( (sleep 1000 </dev/null >/dev/null 2>&1 & echo $!) ); echo orphan-parent=$(cut -d' ' -f4 /proc/$o/stat); kill -9 $o"))
	if st.ExitCode != 0 || !strings.Contains(out, "stdout /pause \n") || !strings.Contains(out, "orphan-parent=1\n") {
		t.Errorf("exit %d, output:\n%s\nwant pause as PID 1 and the orphan re-parented to it", st.ExitCode, out)
	}
	// Nothing is left a zombie in the pod's PID namespace.
	podNS := huskdtest.NS(t, info.Pid, "pid")
	huskdtest.Eventually(t, 30*time.Second, "no zombie left in the pod's PID namespace", func() bool {
		for _, e := range mustReadDir(t, "/proc") {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); ns == podNS && !huskdtest.Alive(pid) {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
					return false
				}
			}
		}
		return true
	})
	// With pid CONTAINER the container is PID 1 of its own namespace.
	cfg := ctrConfig("own", "sh", "-c", "echo pid=$$")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_CONTAINER
	if _, out := runToExit(t, h, pod, podCfg, cfg); !strings.Contains(out, "stdout pid=1\n") {
		t.Errorf("pid CONTAINER: %s", out)
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	e, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOOMKilled(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "oom", nil)
	cfg := ctrConfig("hog", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20, MemorySwapLimitInBytes: 32 << 20}
	st, out := runToExit(t, h, pod, podCfg, cfg)
	if st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("exit %d reason %q, want 137 OOMKilled; output:\n%s", st.ExitCode, st.Reason, out)
	}
	st, _ = runToExit(t, h, pod, podCfg, ctrConfig("fails", "sh", "-c", "exit 3"))
	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("exit %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
}

// huskd killed while containers run, one writing its log and one exiting
// meanwhile: nothing is lost.
func TestContainersSurviveHuskdRestart(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "survive", nil)
	ticker := runCtr(t, h, pod, podCfg, ctrConfig("ticker", "sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done"))
	// The quitter exits when told, once huskd is down: told, not timed,
	// so that a slow start cannot make it exit before.
	quitter := runCtr(t, h, pod, podCfg, ctrConfig("quitter", "sh", "-c", "trap 'echo bye; exit 7' USR1; echo ready; while :; do sleep 0.05; done"))
	huskdtest.Eventually(t, 30*time.Second, "the quitter's trap is set", func() bool {
		return strings.Contains(logText(t, filepath.Join(podCfg.LogDirectory, "quitter.log")), "ready")
	})
	quitterPid := ctrPid(t, h, quitter)
	created := createCtr(t, h, pod, podCfg, ctrConfig("waiting", "sleep", "1000"))
	tickerLog := filepath.Join(podCfg.LogDirectory, "ticker.log")
	ticks := func() int { b, _ := os.ReadFile(tickerLog); return strings.Count(string(b), "\n") }

	h.Kill()
	downSince := time.Now()
	if err := syscall.Kill(quitterPid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 30*time.Second, "the quitter exits while huskd is down", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", quitterPid))
		return os.IsNotExist(err)
	})
	// The ticker goes on writing while huskd is down: a second's worth of
	// lines after the quitter was reaped (time too for its shim to record
	// the exit before huskd is back).
	ticksDown := ticks()
	huskdtest.Eventually(t, 30*time.Second, "the ticker logs while huskd is down", func() bool {
		return ticks() >= ticksDown+20
	})
	ticksDown = ticks()
	downUntil := time.Now()
	h.Launch()

	st := ctrStatus(t, h, quitter)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
		t.Errorf("the container that exited while huskd was down: %v exit %d", st.State, st.ExitCode)
	}
	if fin := time.Unix(0, st.FinishedAt); fin.Before(downSince) || fin.After(downUntil) {
		t.Errorf("finished at %v, want during the downtime %v-%v", fin, downSince, downUntil)
	}
	if !strings.Contains(logText(t, st.LogPath), "stdout bye\n") {
		t.Error("the line written while huskd was down is missing")
	}
	if st := ctrStatus(t, h, ticker); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("ticker after restart: %v", st.State)
	}
	if st := ctrStatus(t, h, created); st.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after restart: %v", st.State)
	}
	// Every tick, none lost around the downtime.
	if err := h.Runtime.StopContainer(ctx, ticker, 0); err != nil {
		t.Fatal(err)
	}
	n := -1
	for _, l := range readLog(t, filepath.Join(podCfg.LogDirectory, "ticker.log")) {
		var i int
		if _, err := fmt.Sscanf(l.content, "tick %d", &i); err != nil {
			t.Fatalf("log line %q", l.content)
		}
		if i != n+1 {
			t.Fatalf("tick %d follows tick %d: lines were lost", i, n)
		}
		n = i
	}
	if n+1 < ticksDown {
		t.Errorf("only %d ticks, %d logged before huskd came back", n+1, ticksDown)
	}
	// The created container still starts through the reconnected shim.
	if err := h.Runtime.StartContainer(ctx, created); err != nil {
		t.Errorf("start after restart: %v", err)
	}
}

func TestReopenContainerLog(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "rotate", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("talker", "sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done"))
	logPath := filepath.Join(podCfg.LogDirectory, "talker.log")
	lines := func(p string) int { b, _ := os.ReadFile(p); return strings.Count(string(b), "\n") }
	huskdtest.Eventually(t, 30*time.Second, "the talker logs", func() bool { return lines(logPath) >= 5 })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.ReopenContainerLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 30*time.Second, "the talker logs to the reopened file", func() bool { return lines(logPath) >= 5 })
	if err := h.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	old, cur := readLog(t, logPath+".1"), readLog(t, logPath)
	if len(old) == 0 || len(cur) == 0 {
		t.Fatalf("old log %d lines, new log %d lines", len(old), len(cur))
	}
	var a, b int
	fmt.Sscanf(old[len(old)-1].content, "line %d", &a)
	fmt.Sscanf(cur[0].content, "line %d", &b)
	if b != a+1 {
		t.Errorf("the rotated log ends at line %d and the new one starts at %d", a, b)
	}
	// A container that is not running gets no new log file.
	os.Remove(logPath)
	if err := h.Runtime.ReopenContainerLog(ctx, id); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("reopen of an exited container: %v", err)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Error("a log file was created for an exited container")
	}
}

func TestSecurityContext(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "sec", nil)
	sc := func(t *testing.T, name string, cmd string, mod func(*runtime.LinuxContainerSecurityContext)) (*runtime.ContainerStatus, string) {
		t.Helper()
		cfg := ctrConfig(name, "sh", "-c", cmd)
		mod(cfg.Linux.SecurityContext)
		return runToExit(t, h, pod, podCfg, cfg)
	}
	t.Run("seccomp RuntimeDefault blocks keyctl", func(t *testing.T) {
		_, out := sc(t, "seccomp-default", "husktest syscall keyctl", func(s *runtime.LinuxContainerSecurityContext) {
			s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
		})
		if !strings.Contains(out, "stdout EPERM\n") {
			t.Errorf("keyctl under RuntimeDefault: %s", out)
		}
		_, out = sc(t, "seccomp-unconfined", "husktest syscall keyctl", func(s *runtime.LinuxContainerSecurityContext) {
			s.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}
		})
		if strings.Contains(out, "EPERM") || strings.Contains(out, "ENOSYS") {
			t.Errorf("keyctl unconfined: %s", out)
		}
	})
	t.Run("read-only rootfs", func(t *testing.T) {
		st, out := sc(t, "ro", "touch /newfile", func(s *runtime.LinuxContainerSecurityContext) { s.ReadonlyRootfs = true })
		if st.ExitCode == 0 || !strings.Contains(out, "Read-only file system") {
			t.Errorf("exit %d: %s", st.ExitCode, out)
		}
		st, _ = sc(t, "rw", "touch /newfile", func(*runtime.LinuxContainerSecurityContext) {})
		if st.ExitCode != 0 {
			t.Errorf("writable rootfs: exit %d", st.ExitCode)
		}
	})
	t.Run("masked and read-only paths", func(t *testing.T) {
		st, out := sc(t, "masked", "wc -c < /proc/version; echo 1 > /proc/sys/kernel/ns_last_pid && echo wrote", func(s *runtime.LinuxContainerSecurityContext) {
			s.MaskedPaths = []string{"/proc/version"}
			s.ReadonlyPaths = []string{"/proc/sys"}
		})
		if !strings.Contains(out, "stdout 0\n") || strings.Contains(out, "wrote") {
			t.Errorf("exit %d: %s", st.ExitCode, out)
		}
	})
	t.Run("capabilities", func(t *testing.T) {
		caps := func(name string, mod func(*runtime.Capability)) uint64 {
			c := &runtime.Capability{}
			mod(c)
			_, out := sc(t, name, "grep CapEff /proc/self/status", func(s *runtime.LinuxContainerSecurityContext) { s.Capabilities = c })
			var v uint64
			if i := strings.Index(out, "CapEff:"); i < 0 {
				t.Fatalf("no CapEff in %q", out)
			} else if _, err := fmt.Sscanf(strings.TrimSpace(out[i+7:]), "%x", &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		const (
			chown    = 1 << 0
			netAdmin = 1 << 12
			sysAdmin = 1 << 21
		)
		def := caps("caps-default", func(*runtime.Capability) {})
		if def&chown == 0 || def&netAdmin != 0 || def&sysAdmin != 0 {
			t.Errorf("default capabilities %x", def)
		}
		got := caps("caps-changed", func(c *runtime.Capability) {
			c.AddCapabilities = []string{"NET_ADMIN"}
			c.DropCapabilities = []string{"CHOWN"}
		})
		if got != def&^chown|netAdmin {
			t.Errorf("add NET_ADMIN, drop CHOWN: %x, want %x", got, def&^chown|netAdmin)
		}
		if got := caps("caps-none", func(c *runtime.Capability) { c.DropCapabilities = []string{"ALL"} }); got != 0 {
			t.Errorf("drop ALL: %x", got)
		}
		if got := caps("caps-all", func(c *runtime.Capability) { c.AddCapabilities = []string{"ALL"} }); got&sysAdmin == 0 {
			t.Errorf("add ALL: %x", got)
		}
	})
	t.Run("users", func(t *testing.T) {
		_, out := sc(t, "user-id", "id -u; id -g; id -G", func(s *runtime.LinuxContainerSecurityContext) {
			s.RunAsUser = &runtime.Int64Value{Value: 1000}
			s.RunAsGroup = &runtime.Int64Value{Value: 2000}
			s.SupplementalGroups = []int64{3000}
		})
		if !strings.Contains(out, "stdout 1000\nstdout 2000\n") || !strings.Contains(out, "3000") {
			t.Errorf("run_as_user 1000, group 2000, supplemental 3000: %s", out)
		}
		st, out := sc(t, "user-name", "id -u", func(s *runtime.LinuxContainerSecurityContext) { s.RunAsUsername = "www-data" })
		if !strings.Contains(out, "stdout 33\n") || st.GetUser().GetLinux().GetUid() != 33 || st.GetUser().GetLinux().GetGid() != 33 {
			t.Errorf("run_as_username www-data: %s, status user %v", out, st.GetUser())
		}
	})
	t.Run("privileged", func(t *testing.T) {
		st, out := sc(t, "priv", "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted", func(s *runtime.LinuxContainerSecurityContext) { s.Privileged = true })
		if !strings.Contains(out, "mounted") {
			t.Errorf("privileged mount: exit %d %s", st.ExitCode, out)
		}
	})
}

func TestContainerStats(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "stats", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("busy", "sh", "-c", "echo data > /written; while :; do :; done"))
	// Until the container has used some CPU and written its file.
	var s *runtime.ContainerStats
	huskdtest.Eventually(t, 30*time.Second, "ContainerStats shows CPU, memory and the written layer", func() bool {
		var err error
		s, err = h.Runtime.ContainerStats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.GetCpu().GetUsageCoreNanoSeconds().GetValue() != 0 && s.GetMemory().GetWorkingSetBytes().GetValue() != 0 &&
			s.GetWritableLayer().GetUsedBytes().GetValue() != 0
	})
	if s.GetAttributes().GetId() != id {
		t.Errorf("ContainerStats: %v", s)
	}
	list, err := h.Runtime.ListContainerStats(ctx, &runtime.ContainerStatsFilter{PodSandboxId: pod})
	if err != nil || len(list) != 1 {
		t.Errorf("ListContainerStats: %v %v", list, err)
	}
	ps, err := h.Runtime.PodSandboxStats(ctx, pod)
	if err != nil || ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || len(ps.GetLinux().GetContainers()) != 1 {
		t.Errorf("PodSandboxStats: %v %v", ps, err)
	}
	if l, err := h.Runtime.ListPodSandboxStats(ctx, nil); err != nil || len(l) != 1 {
		t.Errorf("ListPodSandboxStats: %v %v", l, err)
	}
}

// Stats are read at call time (issue 14): a busy container's CPU counter,
// as two ListContainerStats calls two seconds apart report it, lies between
// the cgroup's own counter read just before and just after each call, and
// moved by what two seconds of spinning give; crictl stats and statsp,
// which divide by the difference of two calls' timestamps, work; memory a
// container takes shows in the next call.
func TestStatsReadAtCallTime(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "stats-now", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("spin", "sh", "-c", "while :; do :; done"))
	cgroupCPU := cgroupCPUReader(t, ctrPid(t, h, id))
	type reading struct {
		before, cri, after uint64
		at                 int64
		st                 *runtime.ContainerStats
	}
	read := func() reading {
		var r reading
		r.before = cgroupCPU()
		l, err := h.Runtime.ListContainerStats(ctx, &runtime.ContainerStatsFilter{Id: id})
		r.after = cgroupCPU()
		if err != nil || len(l) != 1 {
			t.Fatalf("ListContainerStats: %v %v", l, err)
		}
		r.st = l[0]
		r.cri, r.at = r.st.GetCpu().GetUsageCoreNanoSeconds().GetValue(), r.st.GetCpu().GetTimestamp()
		if r.cri < r.before || r.cri > r.after {
			t.Errorf("ListContainerStats says %d ns of CPU; the cgroup said %d before the call and %d after: not read during the call", r.cri, r.before, r.after)
		}
		return r
	}
	first := read()
	huskdtest.Eventually(t, 10*time.Second, "two seconds after the first reading", func() bool {
		return time.Now().UnixNano()-first.at >= int64(2*time.Second)
	})
	second := read()
	elapsed, used := time.Duration(second.at-first.at), time.Duration(second.cri-first.cri)
	t.Logf("CPU %v in %v between the readings", used, elapsed)
	if elapsed < 2*time.Second {
		t.Errorf("the readings are %v apart; the calls were 2 s apart", elapsed)
	}
	// A spinning shell takes a whole core only when the machine has one
	// to spare: the pod's cgroup competes as one task with whatever else
	// runs, and on a 2-core test machine with a load of 3 it gets ~0.45 of
	// a core. That the counter is read during each call is checked exactly
	// above, against the cgroup's own; here, that it moved by a share of
	// the two seconds no load on a test machine goes below (an eighth),
	// where the stale answers of issue 14 (the same reading twice) gave 0.
	if used < elapsed/8 || used > elapsed*time.Duration(goruntime.NumCPU())+100*time.Millisecond {
		t.Errorf("the container used %v of CPU in %v", used, elapsed)
	}

	// crictl divides by the difference of the timestamps of two calls a
	// second apart, and refused the same reading twice ("cpu stat is not
	// updated during sample").
	if out := crictl(t, h, "stats", "--seconds", "1", "--id", id); !strings.Contains(out, id[:13]) || !strings.Contains(out, "spin") {
		t.Errorf("crictl stats:\n%s", out)
	}
	if out := crictl(t, h, "statsp", "--seconds", "1", "--id", pod); !strings.Contains(out, pod[:13]) || !strings.Contains(out, podCfg.Metadata.Name) {
		t.Errorf("crictl statsp:\n%s", out)
	}

	// tmpfs pages are charged to the writer's cgroup and are not file
	// cache: they count in the working set, at once.
	if _, _, err := h.Runtime.ExecSync(ctx, id, []string{"sh", "-c", "head -c 30000000 /dev/zero > /dev/shm/fill"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if third := read(); third.st.GetMemory().GetWorkingSetBytes().GetValue() < second.st.GetMemory().GetWorkingSetBytes().GetValue()+20_000_000 {
		t.Errorf("working set %d → %d after writing 30 MB to /dev/shm", second.st.GetMemory().GetWorkingSetBytes().GetValue(), third.st.GetMemory().GetWorkingSetBytes().GetValue())
	}
}

// cgroupCPUReader reads the CPU counter (ns) of pid's cgroup straight from
// cgroupfs: cpuacct.usage on v1, cpu.stat's usage_usec on v2.
func cgroupCPUReader(t *testing.T, pid int) func() uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var file string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl == "cpuacct" {
				file = filepath.Join("/sys/fs/cgroup/cpuacct", parts[2], "cpuacct.usage")
			}
		}
		if parts[0] == "0" && file == "" {
			file = filepath.Join("/sys/fs/cgroup", parts[2], "cpu.stat")
		}
	}
	return func() uint64 {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.TrimSpace(string(b))
		if strings.HasSuffix(file, "cpu.stat") {
			s, _, _ = strings.Cut(strings.TrimPrefix(s, "usage_usec "), "\n")
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return n * 1000
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return n
	}
}

func TestCreateContainerBadInput(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "bad", nil)
	create := func(podID string, cfg *runtime.ContainerConfig) error {
		_, err := h.Raw.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: podCfg})
		return err
	}
	id := createCtr(t, h, pod, podCfg, ctrConfig("dup", "true"))
	if err := create(pod, ctrConfig("dup", "true")); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), id) {
		t.Errorf("duplicate name: %v, want AlreadyExists naming %s", err, id)
	}
	if err := create(strings.Repeat("ef", 32), ctrConfig("x", "true")); status.Code(err) != codes.NotFound {
		t.Errorf("unknown sandbox: %v, want NotFound", err)
	}
	cases := map[string]struct {
		mod  func(*runtime.ContainerConfig)
		code codes.Code
		says string
	}{
		"relative container path": {func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{ContainerPath: "data", HostPath: "/tmp"}}
		}, codes.InvalidArgument, "container_path"},
		"unknown seccomp profile": {func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/no/such/profile.json"}
		}, codes.InvalidArgument, "profile.json"},
		"unknown image": {func(c *runtime.ContainerConfig) { c.Image.Image = "registry.k8s.io/not-pulled:1" }, codes.NotFound, "not-pulled"},
		"no name":       {func(c *runtime.ContainerConfig) { c.Metadata.Name = "" }, codes.InvalidArgument, "config.metadata.name"},
		"unknown capability": {func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"CAP_FLY"}}
		}, codes.InvalidArgument, "FLY"},
		"group without user": {func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 5}
		}, codes.InvalidArgument, "run_as_group"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := ctrConfig("bad-"+strings.ReplaceAll(name, " ", "-"), "true")
			c.mod(cfg)
			if err := create(pod, cfg); status.Code(err) != c.code || !strings.Contains(err.Error(), c.says) {
				t.Errorf("CreateContainer: %v; want %v saying %q", err, c.code, c.says)
			}
		})
	}
	if l, _ := h.Runtime.ListContainers(ctx, nil); len(l) != 1 {
		t.Errorf("failed creations left containers: %v", l)
	}
	if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := create(pod, ctrConfig("late", "true")); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("container in a stopped pod: %v, want FailedPrecondition", err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// RemovePodSandbox of a pod with containers still in it removes them, and
// StopPodSandbox leaves them exited.
func TestPodRemovalTakesItsContainers(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "takeall", nil)
	a := runCtr(t, h, pod, podCfg, ctrConfig("a", "sleep", "1000"))
	b := createCtr(t, h, pod, podCfg, ctrConfig("b", "sleep", "1000"))
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_EXITED {
			t.Errorf("%s after StopPodSandbox: %v", id[:12], st.State)
		}
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.Runtime.ListContainers(ctx, nil); len(l) != 0 {
		t.Errorf("containers after RemovePodSandbox: %v", l)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

func TestMountsDevicesAndTTY(t *testing.T) {
	h, reg := ctrHuskd(t, "")
	pod, podCfg := podWithLogs(t, h, "mounts", nil)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("mounts", "sh", "-c", "cat /data/in; echo out > /data/out; cat /ro/in; echo x > /ro/x || echo ro-refused; test -c /dev/mynull && echo device; cat /etc/hostname")
	cfg.Mounts = []*runtime.Mount{
		{ContainerPath: "/data", HostPath: host},
		{ContainerPath: "/ro", HostPath: host, Readonly: true},
	}
	cfg.Devices = []*runtime.Device{{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rwm"}}
	st, out := runToExit(t, h, pod, podCfg, cfg)
	for _, want := range []string{"stdout from host\n", "ro-refused", "stdout device\n", "stdout mounts\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s", st.ExitCode, want, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "out\n" {
		t.Errorf("host sees %q", b)
	}
	if len(st.Mounts) != 2 || st.Mounts[1].ContainerPath != "/ro" || !st.Mounts[1].Readonly {
		t.Errorf("status mounts %v", st.Mounts)
	}

	// A tty container's output is logged as stdout.
	tty := ctrConfig("tty", "sh", "-c", "tty; test -t 1 && echo is-a-tty")
	tty.Tty = true
	if _, out := runToExit(t, h, pod, podCfg, tty); !strings.Contains(out, "stdout /dev/pts/0") || !strings.Contains(out, "is-a-tty") {
		t.Errorf("tty: %s", out)
	}

	// An image volume: another image mounted read-only.
	vol := images.Image(images.Config{}, images.Layer(images.File{Name: "data/"}, images.File{Name: "data/file", Body: []byte("from image")}))
	reg.Push(t, "test/volume:1", vol)
	if _, err := h.Images.PullImage(context.Background(), spec("registry.k8s.io/test/volume:1"), nil, nil); err != nil {
		t.Fatal(err)
	}
	iv := ctrConfig("imagevol", "sh", "-c", "cat /vol/data/file; touch /vol/new || echo ro-refused")
	iv.Mounts = []*runtime.Mount{{ContainerPath: "/vol", Image: &runtime.ImageSpec{Image: "registry.k8s.io/test/volume:1"}, Readonly: true}}
	st, out = runToExit(t, h, pod, podCfg, iv)
	if !strings.Contains(out, "stdout from image") || !strings.Contains(out, "ro-refused") {
		t.Errorf("image volume: %s", out)
	}
	if ref := st.Mounts[0].GetImage().GetImageRef(); ref != imageIDOf(t, h, "registry.k8s.io/test/volume:1") {
		t.Errorf("image volume's image_ref in status: %q", ref)
	}
}

func TestPodSandboxMetrics(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "metrics", nil)
	id := runCtr(t, h, pod, podCfg, ctrConfig("measured", "sleep", "1000"))
	descs, err := h.Runtime.ListMetricDescriptors(ctx)
	if err != nil || len(descs) < 40 {
		t.Fatalf("ListMetricDescriptors: %d, %v", len(descs), err)
	}
	keys := map[string]int{}
	for _, d := range descs {
		keys[d.GetName()] = len(d.GetLabelKeys())
	}
	all, err := h.Runtime.ListPodSandboxMetrics(ctx)
	if err != nil || len(all) != 1 || all[0].GetPodSandboxId() != pod {
		t.Fatalf("ListPodSandboxMetrics: %v, %v", all, err)
	}
	seen := map[string]uint64{}
	for _, c := range all[0].GetContainerMetrics() {
		if c.GetContainerId() != id {
			t.Errorf("metrics for unknown container %s", c.GetContainerId())
		}
		for _, m := range c.GetMetrics() {
			seen[m.GetName()] += m.GetValue().GetValue()
			if n, ok := keys[m.GetName()]; !ok || n != len(m.GetLabelValues()) {
				t.Errorf("%s: %d label values, descriptor has %d keys", m.GetName(), len(m.GetLabelValues()), n)
			}
		}
	}
	// Real readings of the container's cgroup (on either cgroup version):
	// a running sleep holds memory and one process. Its CPU counter is
	// whole seconds, as CRI-O reports it: a sleep has used none yet.
	for _, want := range []string{"container_memory_working_set_bytes", "container_processes", "container_start_time_seconds"} {
		if v, ok := seen[want]; !ok || v == 0 {
			t.Errorf("%s for the container: %d (reported: %v)", want, v, ok)
		}
	}
	if _, ok := seen["container_cpu_usage_seconds_total"]; !ok {
		t.Error("no container_cpu_usage_seconds_total for the container")
	}
}

// A pod in its own user namespace: its containers run as root inside it,
// mapped to unprivileged host IDs, and own their image through ID-mapped
// layers.
func TestUserNamespacePod(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	st, err := h.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetRuntimeHandlers()[0].GetFeatures().GetUserNamespaces() {
		t.Fatalf("Status does not advertise user namespaces; huskd log:\n%s", h.Log())
	}
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	userns := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping}
	pod, podCfg := podWithLogs(t, h, "userns", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	})
	_, info := h.PodInfo(pod)
	if info.Namespaces["user"] == "" || huskdtest.NS(t, info.Pid, "user") == huskdtest.NS(t, os.Getpid(), "user") {
		t.Fatalf("the pause is not in a user namespace of its own: %v", info.Namespaces)
	}
	if got := nsenter(t, "--uts="+info.Namespaces["uts"], "hostname"); got != "userns" {
		t.Errorf("hostname %q", got)
	}
	// The network namespace, made by the pause inside the pod's user
	// namespace, gets CNI and loopback like any other.
	ip := podIP(t, h, pod)
	if got := nsenter(t, "--net="+info.Namespaces["net"], "ip", "-o", "addr", "show"); !strings.Contains(got, ip+"/") || !strings.Contains(got, "lo    inet 127.0.0.1") {
		t.Errorf("pod in a user namespace, addresses:\n%s\nwant %s on eth0 and 127.0.0.1 on lo", got, ip)
	}
	cfg := ctrConfig("inside", "sh", "-c", "cat /proc/self/uid_map; id -u; touch /newfile && stat -c 'new=%u' /newfile; stat -c 'image=%u' /bin/busybox")
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	id := runCtr(t, h, pod, podCfg, cfg)
	ctr := waitExited(t, h, id, 30*time.Second)
	out := logText(t, ctr.LogPath)
	for _, want := range []string{"0     100000      65536", "stdout 0\n", "stdout new=0\n", "stdout image=0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s", ctr.ExitCode, want, out)
		}
	}
	// On the host, the container's new file belongs to the mapped root.
	fi, err := os.Stat(filepath.Join(h.Root, "containers", id, "upper", "newfile"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 100000 {
		t.Errorf("the new file on the host: %v %v", fi, err)
	}
}

// RemoveContainer of an exited container takes its cgroups and
// libcontainer state with it while the pod runs on, also when a child of
// the container outlives its init in a pod-wide PID namespace (the shim
// then leaves the work to husk-runc delete, which kills the child).
func TestRemoveExitedContainerLeavesNothing(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	pod, podCfg := podWithLogs(t, h, "rm-exited", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	})
	for _, c := range []struct {
		name string
		cmd  []string
	}{
		{"alone", []string{"true"}},
		{"orphan", []string{"sh", "-c", "sleep 3600 & echo $! > /dev/shm/orphan"}},
	} {
		cfg := ctrConfig(c.name, c.cmd...)
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
		id := runCtr(t, h, pod, podCfg, cfg)
		waitExited(t, h, id, 30*time.Second)
		resp, err := h.Runtime.ContainerStatus(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			CgroupPath string `json:"cgroupPath"`
		}
		if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.CgroupPath == "" {
			t.Fatalf("%s: verbose info %q: %v", c.name, resp.GetInfo()["info"], err)
		}
		if len(huskdtest.CgroupDirs(info.CgroupPath)) == 0 {
			t.Fatalf("%s: no cgroup at %s before the removal", c.name, info.CgroupPath)
		}
		if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("%s: RemoveContainer: %v", c.name, err)
		}
		if left := huskdtest.CgroupDirs(info.CgroupPath); len(left) > 0 {
			t.Errorf("%s: cgroups left after RemoveContainer: %v", c.name, left)
		}
		state := filepath.Join(h.State, "pods", pod, "runc", id)
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("%s: libcontainer state %s left: %v", c.name, state, err)
		}
	}
	// The orphan was killed with its container's cgroup.
	out, _, err := h.Runtime.ExecSync(ctx, runCtr(t, h, pod, podCfg, func() *runtime.ContainerConfig {
		cfg := ctrConfig("looker", "sleep", "3600")
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
		return cfg
	}()), []string{"sh", "-c", "ps -o args | grep -c '^sleep 3600$'"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("sleep processes in the pod (the looker's own only): %q, %v", out, err)
	}
}

// A bind mount's mount_options (KEP-5855) are applied: noexec, nodev and
// nosuid show in the container's own mount table and noexec stops a
// script, on plain, read-only and recursively read-only mounts alike; a
// mount without them has none of the three. Status advertises
// mount_options, without which kubelet refuses such pods.
func TestBindMountOptions(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	st, err := h.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetFeatures().GetMountOptions() {
		t.Errorf("Status does not advertise mount_options: %v", st.GetFeatures())
	}
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "script"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	all := []string{"noexec", "nodev", "nosuid"}
	mounts := []struct {
		m    *runtime.Mount
		want []string // of the three, those the mount must have
	}{
		{&runtime.Mount{ContainerPath: "/plain", HostPath: host}, nil},
		{&runtime.Mount{ContainerPath: "/opts", HostPath: host, MountOptions: all}, all},
		{&runtime.Mount{ContainerPath: "/noexec", HostPath: host, MountOptions: []string{"noexec"}}, []string{"noexec"}},
		{&runtime.Mount{ContainerPath: "/ro", HostPath: host, Readonly: true, MountOptions: all}, all},
		{&runtime.Mount{ContainerPath: "/rro", HostPath: host, Readonly: true, RecursiveReadOnly: true, MountOptions: []string{"nodev", "nosuid", "rnoexec"}}, all},
	}
	pod, podCfg := podWithLogs(t, h, "mountopts", nil)
	cfg := ctrConfig("mountopts", "sleep", "1000")
	for _, m := range mounts {
		cfg.Mounts = append(cfg.Mounts, m.m)
	}
	id := runCtr(t, h, pod, podCfg, cfg)
	out, _, err := h.Runtime.ExecSync(ctx, id, []string{"cat", "/proc/self/mountinfo"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// mountinfo(5): the mount point is field 5, its per-mount options field 6.
	opts := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 6 {
			opts[f[4]] = strings.Split(f[5], ",")
		}
	}
	for _, m := range mounts {
		dst := m.m.GetContainerPath()
		got, ok := opts[dst]
		if !ok {
			t.Errorf("%s is not in the container's mount table:\n%s", dst, out)
			continue
		}
		for _, o := range all {
			if has, want := slices.Contains(got, o), slices.Contains(m.want, o); has != want {
				t.Errorf("%s (mount_options %v): mounted %v; %s: %v, want %v", dst, m.m.GetMountOptions(), got, o, has, want)
			}
		}
		// noexec is felt, not only listed.
		sout, serr, err := h.Runtime.ExecSync(ctx, id, []string{dst + "/script"}, 10*time.Second)
		if ran := err == nil && string(sout) == "ran\n"; ran == slices.Contains(m.want, "noexec") {
			t.Errorf("%s/script: ran %v (%q %q %v), noexec %v", dst, ran, sout, serr, err, slices.Contains(m.want, "noexec"))
		}
	}
}

// Status advertises user_namespaces_host_network exactly when a pod in its
// own user namespace with the host's network really runs here: its
// container is in a user namespace of its own and in the host's network
// namespace.
func TestUserNamespaceHostNetwork(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	st, err := h.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	advertised := st.GetFeatures().GetUserNamespacesHostNetwork()
	// Nothing more than a user namespace is needed: where pods may have
	// one, they may have it with the host's network.
	if userns := st.GetRuntimeHandlers()[0].GetFeatures().GetUserNamespaces(); advertised != userns {
		t.Errorf("Status advertises user_namespaces_host_network %v, user_namespaces %v", advertised, userns)
	}
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	userns := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping}
	podCfg := huskdtest.PodConfig("userns-hostnet")
	podCfg.LogDirectory = t.TempDir()
	podCfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	podCfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	works, why := func() (bool, string) {
		pod, err := h.Runtime.RunPodSandbox(ctx, podCfg, "")
		if err != nil {
			return false, "RunPodSandbox: " + err.Error()
		}
		t.Cleanup(func() {
			_ = h.Runtime.StopPodSandbox(context.Background(), pod)
			_ = h.Runtime.RemovePodSandbox(context.Background(), pod)
		})
		cfg := ctrConfig("inside", "sleep", "1000")
		cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
		id, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
		if err == nil {
			err = h.Runtime.StartContainer(ctx, id)
		}
		if err != nil {
			return false, "container: " + err.Error()
		}
		pid := ctrPid(t, h, id)
		if huskdtest.NS(t, pid, "net") != huskdtest.NS(t, os.Getpid(), "net") {
			return false, "the container is not in the host's network namespace"
		}
		if huskdtest.NS(t, pid, "user") == huskdtest.NS(t, os.Getpid(), "user") {
			return false, "the container is in the host's user namespace"
		}
		// It reaches a server on the host's loopback, as root mapped to
		// host ID 100000, and has a read-only /sys.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "from the host") }))
		defer srv.Close()
		out, stderr, err := h.Runtime.ExecSync(ctx, id, []string{"sh", "-c", "wget -q -O- " + srv.URL + "; echo; id -u; cat /proc/self/uid_map; ls /sys/class/net; grep ' /sys ' /proc/self/mountinfo"}, 20*time.Second)
		if err != nil {
			return false, fmt.Sprintf("exec: %v %s", err, stderr)
		}
		for _, want := range []string{"from the host\n0\n", "100000", "\nlo\n", " /sys ro,"} {
			if !strings.Contains(string(out), want) {
				return false, fmt.Sprintf("inside, output lacks %q:\n%s", want, out)
			}
		}
		return true, "it runs"
	}()
	if works != advertised {
		t.Errorf("Status advertises user_namespaces_host_network %v, but a pod with both: %s", advertised, why)
	}
	t.Logf("user_namespaces_host_network %v: %s", advertised, why)
}
