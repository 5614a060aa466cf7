package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
)

// A reboot (issue 18.8): the state directory, on tmpfs, is empty, every
// process, mount and cgroup of the pods is gone, the root survives. The
// next huskd reports each pod NotReady, with a reason in its verbose info
// (PodSandboxStatus has no field for one), and each container that ran
// or was created exited, as nobody could see it end: Unknown, exit code
// 255 (containerd's for an unknown exit), with a message. A container
// that exited before the reboot reports the same exit as before: kubelet
// does not run again a container of an OnFailure pod that succeeded. Stop and remove succeed and leave nothing:
// no mount, directory, process, cgroup or IP lease (the leases are on the
// root, and survive the reboot: CNI DEL must release them with the netns
// gone). Then kubelet creates the pods again, with the same configs.
func TestRebootLeavesPodsNotReady(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()

	pod, podCfg := podWithLogs(t, h, "reboot", nil)
	host, hostCfg := podWithLogs(t, h, "reboot-host", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	})
	ctrs := map[string]string{
		"running": runCtr(t, h, pod, podCfg, ctrConfig("running", "sleep", "1000")),
		"exited":  runCtr(t, h, pod, podCfg, ctrConfig("exited", "sh", "-c", "exit 3")),
		"created": createCtr(t, h, pod, podCfg, ctrConfig("created", "sleep", "1000")),
		"host":    runCtr(t, h, host, hostCfg, ctrConfig("host", "sleep", "1000")),
	}
	exited := waitExited(t, h, ctrs["exited"], 30*time.Second)
	if st, _ := h.PodInfo(pod); st.GetNetwork().GetIp() == "" {
		t.Fatal("the pod on the pod network has no IP")
	}

	h.Reboot()
	h.Launch()

	pods, err := h.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 {
		t.Fatalf("after the reboot, %d pods listed, want 2: %v", len(pods), pods)
	}
	for _, p := range pods {
		if p.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
			t.Errorf("pod %s listed %v after the reboot, want NotReady", p.Metadata.Name, p.State)
		}
		st, info := h.PodInfo(p.Id)
		if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || !strings.Contains(info.Reason, "rebooted") {
			t.Errorf("pod %s after the reboot: %v, reason %q; want NotReady, rebooted", p.Metadata.Name, st.State, info.Reason)
		}
	}
	listed, err := h.Runtime.ListContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(ctrs) {
		t.Errorf("after the reboot, %d containers listed, want %d", len(listed), len(ctrs))
	}
	for _, c := range listed {
		if c.State != runtime.ContainerState_CONTAINER_EXITED {
			t.Errorf("container %s listed %v after the reboot, want exited", c.Metadata.Name, c.State)
		}
	}
	for name, id := range ctrs {
		st := ctrStatus(t, h, id)
		if name == "exited" {
			// Its end, seen before the reboot, is kept on the root.
			if !proto.Equal(st, exited) {
				t.Errorf("the container that exited before the reboot: %v after it, %v before", st, exited)
			}
			continue
		}
		if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 255 || st.Reason != "Unknown" || st.Message == "" || st.FinishedAt == 0 {
			t.Errorf("container %s after the reboot: %v, exit code %d, reason %q, message %q, finished %d; want exited, 255, Unknown, a message, a time",
				name, st.State, st.ExitCode, st.Reason, st.Message, st.FinishedAt)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What kubelet does with a pod whose sandbox is not ready: stop it,
	// remove its containers and it.
	for _, p := range []string{pod, host} {
		if err := h.Runtime.StopPodSandbox(ctx, p); err != nil {
			t.Fatalf("StopPodSandbox after the reboot: %v", err)
		}
	}
	for name, id := range ctrs {
		if err := h.Runtime.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("RemoveContainer %s after the reboot: %v", name, err)
		}
	}
	for _, p := range []string{pod, host} {
		if err := h.Runtime.RemovePodSandbox(ctx, p); err != nil {
			t.Fatalf("RemovePodSandbox after the reboot: %v", err)
		}
	}
	huskdtest.Eventually(t, 30*time.Second, "nothing of the pods is left", func() bool {
		return len(h.Leaks()) == 0
	})

	// And creates them again.
	pod = h.RunPod(podCfg)
	host = h.RunPod(hostCfg)
	if st, _ := h.PodInfo(pod); st.GetNetwork().GetIp() == "" {
		t.Fatal("the pod created again on the pod network has no IP")
	}
	for p, cfg := range map[string]*runtime.PodSandboxConfig{pod: podCfg, host: hostCfg} {
		st, out := runToExit(t, h, p, cfg, ctrConfig("again", "sh", "-c", "echo again"))
		if st.ExitCode != 0 || !strings.Contains(out, "again") {
			t.Errorf("a container in pod %s created again: exit code %d, output %q", cfg.Metadata.Name, st.ExitCode, out)
		}
	}
}
