package container

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/huskrt/husk/shim/shimapi"
)

// nri is the container as NRI plugins see it at events after its
// creation: who it is and its state (its spec is in its bundle).
func (c *Container) nri() *api.Container {
	st := c.State
	state := api.ContainerState_CONTAINER_UNKNOWN
	switch st.Status {
	case shimapi.StatusCreated:
		state = api.ContainerState_CONTAINER_CREATED
	case shimapi.StatusRunning:
		state = api.ContainerState_CONTAINER_RUNNING
	case shimapi.StatusExited:
		state = api.ContainerState_CONTAINER_STOPPED
	}
	return &api.Container{
		Id:            c.ID,
		PodSandboxId:  c.PodID,
		Name:          c.Config.GetMetadata().GetName(),
		State:         state,
		Labels:        c.Config.GetLabels(),
		Annotations:   c.Config.GetAnnotations(),
		Pid:           uint32(max(st.PID, 0)),
		CreatedAt:     unixNano(c.CreatedAt),
		StartedAt:     unixNano(st.StartedAt),
		FinishedAt:    unixNano(st.FinishedAt),
		ExitCode:      int32(st.ExitCode),
		StatusReason:  st.Reason,
		StatusMessage: st.Message,
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// nriCreate is a container about to be created, with the OCI spec
// plugins may adjust.
func nriCreate(c *Container, spec *specs.Spec) *api.Container {
	n := c.nri()
	n.State = api.ContainerState_CONTAINER_UNKNOWN
	// Copies: the library changes the request's container as it collects
	// the plugins' adjustments, which must reach the spec only through
	// Adjust.
	n.Annotations = maps.Clone(spec.Annotations)
	if p := spec.Process; p != nil {
		n.Args, n.Env = slices.Clone(p.Args), slices.Clone(p.Env)
		for _, r := range p.Rlimits {
			n.Rlimits = append(n.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		n.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
	}
	n.Mounts = api.FromOCIMounts(spec.Mounts)
	n.Hooks = api.FromOCIHooks(spec.Hooks)
	if l := spec.Linux; l != nil {
		n.Linux = &api.LinuxContainer{
			Namespaces:  api.FromOCILinuxNamespaces(l.Namespaces),
			Devices:     api.FromOCILinuxDevices(l.Devices),
			Resources:   api.FromOCILinuxResources(l.Resources, spec.Annotations),
			CgroupsPath: l.CgroupsPath,
		}
		if p := spec.Process; p != nil && p.OOMScoreAdj != nil {
			n.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
		}
	}
	return n
}

// nriPod is the pod of a container as plugins see it; only its ID once
// it is gone.
func (m *Manager) nriPod(podID string) *api.PodSandbox {
	if sb, err := m.sandboxes.Get(podID); err == nil {
		return sb.NRI()
	}
	return &api.PodSandbox{Id: podID}
}

// nriStop tells plugins the container has stopped, once: its Stop or its
// removal, whichever comes first, and the exit huskd saw (nriExited),
// all go through the entry's once, so that a removal's event waits for
// the stop's.
func (m *Manager) nriStop(ctx context.Context, e *entry) {
	if m.cfg.NRI == nil {
		return
	}
	e.nriStop.Do(func() {
		c := e.cur.Load()
		m.cfg.NRI.StopContainer(ctx, m.nriPod(c.PodID), c.nri())
	})
}

// nriExited is nriStop for a container that exited on its own, called
// apart from the status change that saw it (which must not block).
func (m *Manager) nriExited(id string) {
	e, err := m.lookup(id)
	if err != nil {
		return
	}
	m.nriStop(context.Background(), e)
}

// NRIState is every pod and container, for an NRI plugin that registers
// (nri.StateFunc).
func (m *Manager) NRIState() ([]*api.PodSandbox, []*api.Container) {
	var pods []*api.PodSandbox
	for _, sb := range m.sandboxes.List() {
		pods = append(pods, sb.NRI())
	}
	var ctrs []*api.Container
	for _, c := range m.List() {
		ctrs = append(ctrs, c.nri())
	}
	return pods, ctrs
}
