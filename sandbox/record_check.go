package sandbox

import (
	"fmt"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/shim/shimapi"
)

// checkRecord checks a sandbox record read back from disk before its
// paths are acted on: recovery and removal kill every process in its
// cgroup, and unmount and remove its namespace pins and /dev/shm. Each
// must be where husk puts a pod's own: the ID that of the directory the
// record was found in, the cgroup <parent>/<id> (systemd driver:
// <slice>/cri-husk-<id>.scope), the pins and /dev/shm in the pod's state
// directory stateDir.
func checkRecord(sb *Sandbox, id, stateDir string) error {
	if sb.ID != id {
		return fmt.Errorf("record of pod %q found in the directory of %q", sb.ID, id)
	}
	// What lies above the pod's cgroup is the cgroup_parent kubelet gave,
	// which a record alone cannot vouch for.
	if sb.CgroupPath != "" && !cgroup.Owns(sb.CgroupPath, id) {
		return fmt.Errorf("cgroup %q is not a pod's cgroup <parent>/%s or <slice>/%s-%s.scope", sb.CgroupPath, id, cgroup.ScopePrefix, id)
	}
	if sb.PodCgroup != "" && (!cgroup.OwnsPod(sb.PodCgroup, id) || filepath.Dir(sb.CgroupPath) != sb.PodCgroup) {
		return fmt.Errorf("cgroup %q is not pod %s's own cgroup <parent>/pod%s or <slice>-pod%s.slice holding its pause's %q", sb.PodCgroup, id, id, id, sb.CgroupPath)
	}
	if sb.ShmPath != "" && sb.ShmPath != filepath.Join(stateDir, "shm") {
		return fmt.Errorf("/dev/shm %q is not in the pod's state directory", sb.ShmPath)
	}
	for kind, p := range sb.Namespaces {
		if p != filepath.Join(stateDir, "ns", kind) || filepath.Base(p) != kind {
			return fmt.Errorf("%s namespace pin %q is not in the pod's state directory", kind, p)
		}
	}
	return nil
}

// validContainers drops from a snapshot read back from the pod's state
// directory the containers whose IDs ids.New could not have made: they
// name the cgroups forceStop kills.
func validContainers(podID string, snap shimapi.Snapshot) shimapi.Snapshot {
	kept := snap.Containers[:0:0]
	for _, c := range snap.Containers {
		if !ids.Valid(c.ID) {
			klog.ErrorS(nil, "Ignoring a container with an invalid ID in the shim's snapshot", "podSandboxID", podID, "id", c.ID)
			continue
		}
		kept = append(kept, c)
	}
	snap.Containers = kept
	return snap
}
