package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// sleeperPod runs a pod with one busybox container sleeping, and returns
// the pod and the container.
func sleeperPod(t *testing.T, h *huskdtest.Huskd, name string, mod func(*runtime.ContainerConfig)) (pod, ctr string) {
	t.Helper()
	pod, podCfg := podWithLogs(t, h, name, nil)
	cfg := ctrConfig("sleeper", "sleep", "3600")
	if mod != nil {
		mod(cfg)
	}
	return pod, runCtr(t, h, pod, podCfg, cfg)
}

func execSync(t *testing.T, h *huskdtest.Huskd, id string, timeout int64, cmd ...string) (*runtime.ExecSyncResponse, error) {
	t.Helper()
	// kubelet reads replies of up to 16 MiB.
	return h.Raw.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout}, grpc.MaxCallRecvMsgSize(16<<20))
}

// running counts the processes in container id whose command line is
// cmdline (its words joined by spaces). Debian's busybox has no pgrep.
func running(t *testing.T, h *huskdtest.Huskd, id, cmdline string) int {
	t.Helper()
	script := `n=0; for p in /proc/[0-9]*; do [ "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" = "` + cmdline + ` " ] && n=$((n+1)); done; echo $n`
	resp, err := execSync(t, h, id, 10, "sh", "-c", script)
	if err != nil {
		t.Fatalf("counting %q in %s: %v", cmdline, id[:12], err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(resp.Stdout)))
	if err != nil {
		t.Fatalf("counting %q in %s: %q, %q", cmdline, id[:12], resp.Stdout, resp.Stderr)
	}
	return n
}

// zombies lists the zombie processes below pid (the pod's shim): exec'd
// processes that nobody reaped.
func zombies(t *testing.T, pid int) []string {
	t.Helper()
	parent := map[int]int{}
	state := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		state[p] = f[0]
		parent[p], _ = strconv.Atoi(f[1])
	}
	var out []string
	for p, st := range state {
		if st != "Z" {
			continue
		}
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
				out = append(out, fmt.Sprintf("%d %s", p, strings.TrimSpace(string(comm))))
				break
			}
		}
	}
	return out
}

func TestExecSync(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, id := sleeperPod(t, h, "execsync", nil)
	_, info := h.PodInfo(pod)

	resp, err := execSync(t, h, id, 0, "sh", "-c", "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Stdout) != "out\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 3 {
		t.Errorf("ExecSync = %q, %q, %d; want out, err, 3", resp.Stdout, resp.Stderr, resp.ExitCode)
	}
	// The container's own environment and user.
	if resp, err := execSync(t, h, id[:12], 0, "sh", "-c", "id -u; echo $PATH"); err != nil || !strings.HasPrefix(string(resp.Stdout), "0\n/") {
		t.Errorf("ExecSync by ID prefix: %q, %v", resp.GetStdout(), err)
	}

	t.Run("timeout", func(t *testing.T) {
		_, err := execSync(t, h, id, 1, "sleep", "97")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("ExecSync of sleep 97 with timeout 1s: %v, want DeadlineExceeded", err)
		}
		// critest's check: the timed-out process is gone.
		if n := running(t, h, id, "sleep 97"); n != 0 {
			t.Errorf("after the timeout, %d sleep 97 still run", n)
		}
		if st := ctrStatus(t, h, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("the container is %v after an exec timed out", st.State)
		}
	})

	t.Run("background child", func(t *testing.T) {
		// The child keeps stdout and stderr open for 1000 s; the call
		// ends with the shell (a hang would end in DeadlineExceeded).
		resp, err := execSync(t, h, id, 60, "sh", "-c", "sleep 1000 & echo started")
		if err != nil || string(resp.Stdout) != "started\n" || resp.ExitCode != 0 {
			t.Fatalf("ExecSync with a background child: %q, %v", resp.GetStdout(), err)
		}
		if n := running(t, h, id, "sleep 1000"); n != 1 {
			t.Errorf("%d background children run, want 1: the test proves nothing", n)
		}
	})

	t.Run("output cap", func(t *testing.T) {
		resp, err := execSync(t, h, id, 60, "sh", "-c", "head -c 17000000 /dev/zero; head -c 100 /dev/zero >&2")
		if err != nil {
			t.Fatal(err)
		}
		// Both streams fit in one reply kubelet can read (16 MiB); the
		// process was not blocked by what was dropped.
		if want := 16<<20 - 4096 - 100; len(resp.Stdout) != want || len(resp.Stderr) != 100 || resp.ExitCode != 0 {
			t.Errorf("stdout %d bytes, stderr %d, exit %d; want %d, 100, 0", len(resp.Stdout), len(resp.Stderr), resp.ExitCode, want)
		}
	})

	t.Run("no such command", func(t *testing.T) {
		_, err := execSync(t, h, id, 10, "/no/such/binary")
		if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
			t.Errorf("ExecSync of a missing binary: %v, want an error naming it", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			id   string
			cmd  []string
			code codes.Code
		}{
			{"", []string{"true"}, codes.InvalidArgument},
			{id, nil, codes.InvalidArgument},
			{"0000000000000000000000000000000000000000000000000000000000000000", []string{"true"}, codes.NotFound},
		} {
			if _, err := execSync(t, h, c.id, 0, c.cmd...); status.Code(err) != c.code {
				t.Errorf("ExecSync(%q, %q): %v, want %v", c.id, c.cmd, err, c.code)
			}
		}
	})

	if z := zombies(t, info.ShimPid); len(z) != 0 {
		t.Errorf("zombies left below the shim: %v", z)
	}

	// A container that is not running has nothing to exec in.
	if err := h.Runtime.StopContainer(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := execSync(t, h, id, 0, "true"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ExecSync in an exited container: %v, want FailedPrecondition", err)
	}
}

// kubelet probes every container every few seconds: many at once must
// all complete.
func TestExecSyncInParallel(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	pod, id := sleeperPod(t, h, "execsync-many", nil)
	_, info := h.PodInfo(pod)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := execSync(t, h, id, 60, "echo", strconv.Itoa(i))
			if err == nil && string(resp.Stdout) != strconv.Itoa(i)+"\n" {
				err = fmt.Errorf("exec %d printed %q", i, resp.Stdout)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(zombies(t, info.ShimPid)) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if z := zombies(t, info.ShimPid); len(z) != 0 {
		t.Errorf("zombies left below the shim: %v", z)
	}
}
