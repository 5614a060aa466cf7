package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/shim/shimapi"
)

// Records read back from disk are checked before they are acted on:
// planted records whose IDs climb, or that name another container's
// cgroup and directories, and a shim snapshot whose container ID climbs
// into another pod's cgroup, are left alone across a restart of huskd.
// Nothing outside their own is removed or killed.
func TestHostileRecordsAreLeftAlone(t *testing.T) {
	h, _ := ctrHuskd(t, "")
	ctx := context.Background()
	victimParent := h.CgroupParent()
	victimPod, victimPodCfg := podWithLogs(t, h, "victim", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = victimParent })
	victim := runCtr(t, h, victimPod, victimPodCfg, ctrConfig("victim", "sleep", "1000"))
	victimPid := ctrPid(t, h, victim)
	victimCgroup := victimParent + "/" + victim
	if len(huskdtest.CgroupDirs(victimCgroup)) == 0 {
		t.Fatalf("the victim's cgroup %s is not where the test expects it", victimCgroup)
	}
	staleParent := h.CgroupParent()
	stale, _ := podWithLogs(t, h, "stale", func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = staleParent })
	_, staleInfo := h.PodInfo(stale)

	h.Kill()
	// The stale pod's shim dies too: its pod will be stopped from what the
	// shim last wrote down.
	if err := syscall.Kill(staleInfo.ShimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	huskdtest.Eventually(t, 10*time.Second, "the stale pod's shim exits", func() bool { return !huskdtest.Alive(staleInfo.ShimPid) })

	// What the planted records point at.
	keep := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "keep")
		if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	victimDir := filepath.Join(t.TempDir(), "bundle")
	victimFile := keep(victimDir)
	climbedTo := keep(filepath.Join(h.Dir, "victim-rec")) // <root>/containers/../../victim-rec
	pin := keep(t.TempDir())
	plant := func(p string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newID := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	goneCtr1, goneCtr2, gonePod, plantedPod, strayCtr := newID(), newID(), newID(), newID(), newID()
	planted := []string{
		filepath.Join(h.Root, "containers", goneCtr1),
		filepath.Join(h.Root, "containers", goneCtr2),
		filepath.Join(h.Root, "pods", plantedPod),
		filepath.Join(h.Root, "containers", strayCtr),
	}
	// A container record whose ID climbs out of the containers directory.
	plant(filepath.Join(planted[0], "container.json"), map[string]any{
		"version": 1, "id": "../../victim-rec", "podID": gonePod, "name": "planted-1",
		"bundle": victimDir, "cgroupPath": victimCgroup,
	})
	// Valid IDs, but another container's cgroup and a bundle elsewhere.
	plant(filepath.Join(planted[1], "container.json"), map[string]any{
		"version": 1, "id": goneCtr2, "podID": gonePod, "name": "planted-2",
		"bundle": victimDir, "cgroupPath": victimCgroup,
	})
	// A pod interrupted while being created, whose cgroup is the victim's
	// and whose network namespace pin is a file of the test.
	plant(filepath.Join(planted[2], "sandbox.json"), map[string]any{
		"version": 1, "id": plantedPod, "name": "planted-3", "state": "creating",
		"cgroupPath": victimCgroup, "namespaces": map[string]string{"net": pin},
	})
	// A container of the victim's pod, all in order but for its cgroup,
	// which is under another pod's parent.
	plant(filepath.Join(planted[3], "container.json"), map[string]any{
		"version": 1, "id": strayCtr, "podID": victimPod, "name": "planted-4",
		"bundle":     filepath.Join(h.State, "pods", victimPod, "containers", strayCtr),
		"cgroupPath": staleParent + "/" + strayCtr,
	})
	// The stale pod's last snapshot, with a container whose ID climbs
	// from the stale pod's cgroup parent into the victim's cgroup.
	snapFile := filepath.Join(h.State, "pods", stale, shimapi.ContainersFile)
	var snap shimapi.Snapshot
	if b, err := os.ReadFile(snapFile); err != nil || json.Unmarshal(b, &snap) != nil {
		t.Fatalf("reading %s: %v", snapFile, err)
	}
	snap.Containers = append(snap.Containers, shimapi.ContainerState{
		ID: "../" + path.Base(victimParent) + "/" + victim, Status: shimapi.StatusRunning, PID: victimPid,
	})
	plant(snapFile, snap)

	h.Launch()
	if err := h.Runtime.StopPodSandbox(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, stale); err != nil {
		t.Fatal(err)
	}

	if !huskdtest.Alive(victimPid) {
		t.Error("the victim container's process was killed")
	}
	if st := ctrStatus(t, h, victim); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the victim container is %v", st.State)
	}
	for _, p := range []string{victimFile, climbedTo, pin} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a planted record's target was removed: %v", err)
		}
	}
	for _, p := range planted {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a planted record was not left alone: %v", err)
		}
	}
	if pods, _ := h.Runtime.ListPodSandbox(ctx, nil); len(pods) != 1 || pods[0].Id != victimPod {
		t.Errorf("pods after the restart: %v, want the victim's alone", pods)
	}
	if ctrs, _ := h.Runtime.ListContainers(ctx, nil); len(ctrs) != 1 || ctrs[0].Id != victim {
		t.Errorf("containers after the restart: %v, want the victim alone", ctrs)
	}
	log := h.Log()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "leaving it alone") || strings.Contains(line, "Ignoring a container") {
			t.Log(line)
		}
	}
	for _, want := range []string{"invalid container record", "invalid sandbox record", "invalid ID in the shim's snapshot", "its cgroup is not under its pod's"} {
		if !strings.Contains(log, want) {
			t.Errorf("huskd's log does not say %q", want)
		}
	}
	// Left alone means left: the test removes what it planted.
	for _, p := range append(planted, filepath.Dir(climbedTo)) {
		if err := os.RemoveAll(p); err != nil {
			t.Error(err)
		}
	}
}
