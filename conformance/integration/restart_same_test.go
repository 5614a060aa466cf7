package integration

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// criSnapshot is every answer of the CRI about a node's state that a
// restart of huskd must leave as it was, keyed by the call that gave it.
type criSnapshot struct {
	answers map[string]proto.Message
	// info is the verbose "info" of each answer, parsed, so that a diff
	// shows the field that moved rather than two long JSON strings.
	info map[string]any
}

// snapshotCRI asks huskd everything it knows about the node: the lists,
// and the verbose status of every image (by ID and by each of its names),
// pod and container. Lists are compared in husk's order: containers and
// pods sorted by creation time, images by pull time (container.Manager,
// sandbox.Manager and image.Store List), which are themselves guarded.
func snapshotCRI(t *testing.T, h *huskdtest.Huskd) criSnapshot {
	t.Helper()
	ctx := context.Background()
	s := criSnapshot{answers: map[string]proto.Message{}, info: map[string]any{}}
	add := func(key string, m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		// Copied, so that normalizing never touches what was received.
		m = proto.Clone(m)
		var infoMap map[string]string
		switch r := m.(type) {
		case *runtime.ImageStatusResponse:
			infoMap, r.Info = r.Info, nil
		case *runtime.PodSandboxStatusResponse:
			infoMap, r.Info = r.Info, nil
			// The time of the answer, not of anything on the node.
			r.Timestamp = 0
		case *runtime.ContainerStatusResponse:
			infoMap, r.Info = r.Info, nil
		case *runtime.ImageFsInfoResponse:
			for _, fs := range append(r.ImageFilesystems, r.ContainerFilesystems...) {
				fs.Timestamp = 0 // the time of the answer as well
			}
		}
		s.answers[key] = m
		for k, v := range infoMap {
			var parsed any
			if err := json.Unmarshal([]byte(v), &parsed); err != nil {
				t.Fatalf("%s: verbose %s is not JSON: %v", key, k, err)
			}
			s.info[key+" info["+k+"]"] = parsed
		}
	}

	imgs, err := h.RawImages.ListImages(ctx, &runtime.ListImagesRequest{})
	add("ListImages", imgs, err)
	for _, img := range imgs.GetImages() {
		for _, ref := range append(append([]string{img.Id}, img.RepoTags...), img.RepoDigests...) {
			st, err := h.RawImages.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(ref), Verbose: true})
			add("ImageStatus "+ref, st, err)
		}
	}
	fs, err := h.RawImages.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	add("ImageFsInfo", fs, err)

	pods, err := h.Raw.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	add("ListPodSandbox", pods, err)
	for _, p := range pods.GetItems() {
		st, err := h.Raw.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.Id, Verbose: true})
		add("PodSandboxStatus "+p.GetMetadata().GetName(), st, err)
	}
	ctrs, err := h.Raw.ListContainers(ctx, &runtime.ListContainersRequest{})
	add("ListContainers", ctrs, err)
	for _, c := range ctrs.GetContainers() {
		st, err := h.Raw.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		add("ContainerStatus "+c.GetMetadata().GetName(), st, err)
	}
	return s
}

// diff is what moved from s to o, empty if nothing did.
func (s criSnapshot) diff(o criSnapshot) string {
	return cmp.Diff(s.answers, o.answers, protocmp.Transform()) + cmp.Diff(s.info, o.info)
}

// What a restart must not change (cri-o#9925, #9923): kubelet compares
// what it saw before with what it sees after, and restarts or re-pulls on
// any difference. Every answer about images, pods and containers is the
// same, whole, after a graceful restart of huskd and after a crash: image
// IDs, repo tags and digests, pod IPs, network namespace paths, log paths,
// the times to the nanosecond, the shims' and containers' pids (the shims
// outlive huskd), the bundles and cgroups; and the exit huskd declared
// for a container whose shim died, which no shim can tell again.
func TestRestartChangesNoAnswer(t *testing.T) {
	h, reg := imageHuskd(t, "")
	ctx := context.Background()

	// Images: busybox by two tags (one image, two names), and another
	// (busybox's layers, its own config) by digest alone, with no tag.
	bb := busyboxTestImage(t)
	reg.Push(t, "e2e-test-images/busybox:1.29-2", bb)
	reg.Push(t, "library/busybox:latest", bb)
	layers, err := bb.Layers()
	if err != nil {
		t.Fatal(err)
	}
	other := images.Image(images.Config{Cmd: []string{"sleep", "1000"}}, layers...)
	reg.Push(t, "test/other:1", other)
	otherDigest, otherID := digestOf(t, other)
	otherRef := "registry.k8s.io/test/other@" + otherDigest
	for _, ref := range []string{busyboxRef, "busybox", otherRef} {
		if _, err := h.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}

	// A pod on the pod network and one on the host's; in the first a
	// running container, one that exited with a code and one created and
	// never started, each with a log. The host's runs the other image as
	// kubelet creates containers: from the image's ID, with the name the
	// pod's author wrote beside it. A third pod is stopped, its container
	// exited with it.
	pod, podCfg := podWithLogs(t, h, "same", nil)
	host, hostCfg := podWithLogs(t, h, "same-host", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	})
	stopped, stoppedCfg := podWithLogs(t, h, "same-stopped", nil)
	runCtr(t, h, pod, podCfg, ctrConfig("running", "sleep", "1000"))
	victim := runCtr(t, h, pod, podCfg, ctrConfig("victim", "sleep", "1000"))
	exited := runCtr(t, h, pod, podCfg, ctrConfig("exited", "sh", "-c", "echo bye; exit 3"))
	createCtr(t, h, pod, podCfg, ctrConfig("created", "sleep", "1000"))
	hostCtr := ctrConfig("host-running")
	hostCtr.Image = &runtime.ImageSpec{Image: otherID, UserSpecifiedImage: otherRef}
	runCtr(t, h, host, hostCfg, hostCtr)
	runCtr(t, h, stopped, stoppedCfg, ctrConfig("stopped", "sleep", "1000"))
	if st := waitExited(t, h, exited, 30*time.Second); st.ExitCode != 3 {
		t.Fatalf("exited with %d, want 3", st.ExitCode)
	}
	if err := h.Runtime.StopPodSandbox(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	// A pod whose shim died: NotReady, and its container exited as far as
	// anyone can know (Unknown, at the time huskd saw the shim go).
	orphaned, orphanedCfg := podWithLogs(t, h, "same-shimless", nil)
	orphan := runCtr(t, h, orphaned, orphanedCfg, ctrConfig("orphan", "sleep", "1000"))
	_, orphanedInfo := h.PodInfo(orphaned)
	if err := syscall.Kill(orphanedInfo.ShimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExited(t, h, orphan, 30*time.Second)

	before := snapshotCRI(t, h)
	checkSnapshotCovers(t, before)

	same := func(how string) {
		t.Helper()
		if d := before.diff(snapshotCRI(t, h)); d != "" {
			t.Errorf("after %s, the CRI answers differ (-before +after):\n%s", how, d)
		}
	}
	h.Stop()
	h.Launch()
	same("a graceful stop and a restart of huskd")
	h.Kill()
	h.Launch()
	same("SIGKILL and a restart of huskd")

	// A container killed while huskd is down: its end, as the restarted
	// huskd learns it from the shim, is the same after the next restart.
	victimPid := ctrPid(t, h, victim)
	h.Kill()
	if err := syscall.Kill(victimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 30*time.Second, "the victim dies while huskd is down", func() bool {
		return !huskdtest.Alive(victimPid)
	})
	h.Launch()
	// Its shim may report the exit just after the restart: the state is
	// read once it has.
	st := waitExited(t, h, victim, 30*time.Second)
	if st.ExitCode != 137 || st.FinishedAt == 0 {
		t.Errorf("the container killed while huskd was down: exit code %d, finished %d; want 137, a time", st.ExitCode, st.FinishedAt)
	}
	before = snapshotCRI(t, h)
	h.Stop()
	h.Launch()
	same("a container's exit while huskd was down and another restart")
}

// checkSnapshotCovers fails the test unless the snapshot holds each thing
// the restart must keep, not empty, so that comparing it means something.
func checkSnapshotCovers(t *testing.T, s criSnapshot) {
	t.Helper()
	imgs := s.answers["ListImages"].(*runtime.ListImagesResponse).GetImages()
	var tags, digests int
	for _, img := range imgs {
		tags += len(img.RepoTags)
		digests += len(img.RepoDigests)
	}
	if len(imgs) != 2 || tags != 2 || digests < 2 {
		t.Fatalf("images %v: want 2, with 2 tags and a digest each", imgs)
	}
	if st := s.answers["PodSandboxStatus same-stopped"].(*runtime.PodSandboxStatusResponse).GetStatus(); st.GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("the stopped pod is %v", st.GetState())
	}
	pod := s.answers["PodSandboxStatus same"].(*runtime.PodSandboxStatusResponse)
	info, _ := s.info["PodSandboxStatus same info[info]"].(map[string]any)
	ns, _ := info["namespaces"].(map[string]any)
	if pod.GetStatus().GetNetwork().GetIp() == "" || ns["net"] == nil {
		t.Fatalf("the pod on the pod network: ip %q, namespaces %v", pod.GetStatus().GetNetwork().GetIp(), ns)
	}
	want := map[string]runtime.ContainerState{
		"running": runtime.ContainerState_CONTAINER_RUNNING, "exited": runtime.ContainerState_CONTAINER_EXITED,
		"created": runtime.ContainerState_CONTAINER_CREATED, "host-running": runtime.ContainerState_CONTAINER_RUNNING,
		"stopped": runtime.ContainerState_CONTAINER_EXITED, "victim": runtime.ContainerState_CONTAINER_RUNNING,
		"orphan": runtime.ContainerState_CONTAINER_EXITED,
	}
	for name, state := range want {
		st := s.answers["ContainerStatus "+name].(*runtime.ContainerStatusResponse).GetStatus()
		if st.GetState() != state || st.GetLogPath() == "" || st.GetCreatedAt() == 0 {
			t.Errorf("container %s: %v, log %q, created %d", name, st.GetState(), st.GetLogPath(), st.GetCreatedAt())
		}
		if state != runtime.ContainerState_CONTAINER_CREATED && st.GetStartedAt() == 0 {
			t.Errorf("container %s: no start time", name)
		}
		if name == "exited" && (st.GetFinishedAt() == 0 || st.GetExitCode() != 3) {
			t.Errorf("container %s: finished %d, exit code %d", name, st.GetFinishedAt(), st.GetExitCode())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
