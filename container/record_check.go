package container

import (
	"fmt"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/shim/shimapi"
)

// checkRecord checks a container record read back from disk before its
// fields name directories to remove and a cgroup to kill: its ID must be
// that of the directory it was found in (id, which ids.Valid accepted),
// its pod's ID one husk could have made, its bundle where husk puts
// bundles (bundle), its cgroup <parent>/<id>. Reconcile checks the parent
// once the pods are known.
func checkRecord(c *Container, id, bundle string) error {
	switch {
	case c.ID != id:
		return fmt.Errorf("record of container %q found in the directory of %q", c.ID, id)
	case !ids.Valid(c.PodID):
		return fmt.Errorf("pod ID %q is not one husk makes", c.PodID)
	case c.Bundle != bundle:
		return fmt.Errorf("bundle %q is not %q", c.Bundle, bundle)
	case !cgroup.Owns(c.CgroupPath, id):
		return fmt.Errorf("cgroup %q is not a container's cgroup <parent>/%s or <slice>/%s-%s.scope", c.CgroupPath, id, cgroup.ScopePrefix, id)
	}
	return nil
}

// validStates drops from a shim's snapshot the containers whose IDs
// ids.New could not have made: they would name bundles to remove.
func validStates(podID string, states []shimapi.ContainerState) []shimapi.ContainerState {
	kept := states[:0:0]
	for _, st := range states {
		if !ids.Valid(st.ID) {
			klog.ErrorS(nil, "Ignoring a container with an invalid ID in the shim's snapshot", "podSandboxID", podID, "id", st.ID)
			continue
		}
		kept = append(kept, st)
	}
	return kept
}
