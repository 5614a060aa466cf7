package sandbox

import (
	"fmt"
	"path"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/shim/shimapi"
)

// checkRecord checks a sandbox record read back from disk before its
// paths are acted on: recovery and removal kill every process in its
// cgroup, and unmount and remove its namespace pins and /dev/shm. Each
// must be where husk puts a pod's own: the ID that of the directory the
// record was found in, the cgroup <parent>/<id>, the pins and /dev/shm in
// the pod's state directory stateDir.
func checkRecord(sb *Sandbox, id, stateDir string) error {
	if sb.ID != id {
		return fmt.Errorf("record of pod %q found in the directory of %q", sb.ID, id)
	}
	if sb.CgroupPath != "" && !OwnCgroup(sb.CgroupPath, id) {
		return fmt.Errorf("cgroup %q is not a pod's cgroup <parent>/%s", sb.CgroupPath, id)
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

// OwnCgroup reports whether p, read back from a record, can be the cgroup
// of the pod or container id: an absolute, clean path whose last element
// is id. What lies above is the cgroup_parent kubelet gave, which a record
// alone cannot vouch for.
func OwnCgroup(p, id string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && path.Base(p) == id
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
