package integration

import (
	"context"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// A shim that does not answer while huskd restarts is unknown, not dead
// (issue 18; containerd#13784): SIGSTOP one pod's shim, SIGKILL huskd and
// start it. The restart does not wait for the stopped shim; the pod stays
// Ready and its container Running (reporting them NotReady and Exited
// would make kubelet start a second copy of a container that still runs);
// calls that need the stuck shim fail as Unavailable within their
// deadline, and calls about other pods work. After SIGCONT huskd has the
// shim back and everything works.
func TestStuckShimIsNotDead(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	stuckPod, stuckCfg := podWithLogs(t, h, "stuck", nil)
	stuck := runCtr(t, h, stuckPod, stuckCfg, ctrConfig("stuck", "sleep", "1000"))
	otherPod, otherCfg := podWithLogs(t, h, "other", nil)
	other := runCtr(t, h, otherPod, otherCfg, ctrConfig("other", "sleep", "1000"))

	_, info := h.PodInfo(stuckPod)
	if err := syscall.Kill(info.ShimPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(info.ShimPid, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume) // before huskd's cleanup, which stops the pods

	h.Kill()
	h.Launch() // waits until huskd serves

	st, err := h.Runtime.PodSandboxStatus(ctx, stuckPod, false)
	if err != nil || st.GetStatus().GetState() != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("the pod of the stopped shim after huskd's restart: %v, %v; want Ready", st.GetStatus().GetState(), err)
	}
	if s := ctrStatus(t, h, stuck).GetState(); s != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the container of the stopped shim after huskd's restart is %v, want Running", s)
	}
	// The call that needs the shim fails with a code kubelet retries on,
	// within its deadline.
	start := time.Now()
	_, err = execSync(t, h, stuck, 5, "true")
	if status.Code(err) != codes.Unavailable {
		t.Errorf("ExecSync in the stopped shim's container: %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("ExecSync in the stopped shim's container took %v", d)
	}
	if r, err := execSync(t, h, other, 30, "true"); err != nil || r.GetExitCode() != 0 {
		t.Errorf("ExecSync in another pod while one shim is stopped: %v, %v", r, err)
	}

	resume()
	huskdtest.Eventually(t, 30*time.Second, "huskd has the resumed shim back", func() bool {
		r, err := execSync(t, h, stuck, 30, "true")
		return err == nil && r.GetExitCode() == 0
	})
	if s := ctrStatus(t, h, stuck).GetState(); s != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the container after SIGCONT is %v, want Running", s)
	}
	// And it is managed again: stopped through its shim, with its code.
	if err := h.Runtime.StopContainer(ctx, stuck, 10); err != nil {
		t.Fatal(err)
	}
	if s := ctrStatus(t, h, stuck); s.GetState() != runtime.ContainerState_CONTAINER_EXITED || s.GetExitCode() != 143 {
		t.Errorf("stopped after SIGCONT: %v exit %d, want Exited 143 (SIGTERM)", s.GetState(), s.GetExitCode())
	}
}
