package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
)

// Start starts a created container.
func (m *Manager) Start(ctx context.Context, id string) error {
	defer metrics.Since(metrics.ContainerOperationDuration.WithLabelValues(metrics.OpStart), time.Now())
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cur.Load()
	if c.State.Status != shimapi.StatusCreated {
		return errdefs.FailedPrecondition("container %s is %s, not created", c.ID, c.State.Status)
	}
	return m.sandboxes.WithShim(c.PodID, func(sb *sandbox.Sandbox, sc *shimapi.Client) error {
		if err := m.cfg.NRI.StartContainer(ctx, sb.NRI(), c.nri()); err != nil {
			return err
		}
		st, err := sc.StartContainer(ctx, c.ID)
		faults.Point("StartContainer/after-shim-start")
		next := e.update(func(x *Container) { report(x, st, 0) })
		if err != nil {
			return fmt.Errorf("starting container %s: %w", c.ID, err)
		}
		klog.InfoS("Container started", "podSandboxID", c.PodID, "containerID", c.ID, "pid", st.PID)
		m.cfg.NRI.PostStartContainer(ctx, sb.NRI(), next.nri())
		return nil
	})
}

// Stop sends the stop signal, waits timeout, then kills every process of
// the container. api.proto: idempotent, and no error for an unknown ID.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	defer metrics.Since(metrics.ContainerOperationDuration.WithLabelValues(metrics.OpStop), time.Now())
	return m.withContainer(id, func(e *entry) error {
		c := e.cur.Load()
		if c.State.Status == shimapi.StatusExited {
			return nil
		}
		sig, err := signalNumber(c.StopSignal)
		if err != nil {
			return err
		}
		err = m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
			st, err := sc.StopContainer(ctx, shimapi.StopContainerArgs{ID: c.ID, Signal: sig, Timeout: timeout})
			faults.Point("StopContainer/after-shim-stop")
			e.update(func(x *Container) { report(x, st, 0) })
			faults.Point("StopContainer/after-update")
			return err
		})
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			// The pod is stopped or its shim gone: nothing of it runs unless the
			// shim died; make sure.
			err = m.killWithoutShim(e)
		}
		if err == nil {
			m.nriStop(ctx, e)
		}
		return err
	})
}

// withContainer runs fn with the container's lifecycle lock held. An
// unknown or removed container is no error and fn does not run: Stop and
// Remove are idempotent (api.proto).
func (m *Manager) withContainer(idOrPrefix string, fn func(*entry) error) error {
	e, err := m.lookup(idOrPrefix)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return nil
	}
	return fn(e)
}

// killWithoutShim kills whatever is left in a container's cgroup when its
// shim cannot, and records it exited.
func (m *Manager) killWithoutShim(e *entry) error {
	c := e.cur.Load()
	if err := cgroup.Destroy(c.CgroupPath, 10*time.Second); err != nil {
		return err
	}
	m.declareExit(e, func(x *Container) bool { return unknownExit(x, "the pod's shim is gone") })
	return nil
}

// Remove removes a container, killing it first if it runs. api.proto:
// idempotent, and no error for an unknown ID.
func (m *Manager) Remove(ctx context.Context, id string) error {
	defer metrics.Since(metrics.ContainerOperationDuration.WithLabelValues(metrics.OpRemove), time.Now())
	return m.withContainer(id, func(e *entry) error { return m.removeLocked(ctx, e) })
}

// removeLocked removes the container; e.mu must be held.
func (m *Manager) removeLocked(ctx context.Context, e *entry) error {
	c := e.cur.Load()
	err := m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.RemoveContainer(ctx, c.ID)
	})
	if errors.Is(err, errdefs.ErrFailedPrecondition) || errors.Is(err, errdefs.ErrNotFound) {
		err = m.killWithoutShim(e)
		_ = os.RemoveAll(filepath.Join(m.sandboxes.StateDir(c.PodID), shimapi.RuncRoot, c.ID))
	}
	if err != nil {
		return fmt.Errorf("removing container %s: %w", c.ID, err)
	}
	faults.Point("RemoveContainer/after-shim-remove")
	// No exit is written into the record while it is removed, nor after.
	e.recordMu.Lock()
	err = m.removeFiles(c)
	e.unrecorded = err == nil
	e.recordMu.Unlock()
	if err != nil {
		return fmt.Errorf("removing container %s: %w", c.ID, err)
	}
	e.removed = true
	m.mu.Lock()
	delete(m.ctrs, c.ID)
	m.mu.Unlock()
	m.names.Release(c.Name, c.ID)
	m.event(e, EventDeleted)
	if m.cfg.NRI != nil {
		m.nriStop(ctx, e) // a container never seen stopped: once, before its removal
		m.cfg.NRI.RemoveContainer(ctx, m.nriPod(c.PodID), e.cur.Load().nri())
	}
	klog.InfoS("Container removed", "podSandboxID", c.PodID, "containerID", c.ID)
	return nil
}

// RemovePod removes every container of a pod (sandbox.Observer).
func (m *Manager) RemovePod(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range m.List() {
		if c.PodID == podID {
			errs = append(errs, m.Remove(ctx, c.ID))
		}
	}
	return errors.Join(errs...)
}

// ReopenLog makes the shim reopen the container's log after kubelet
// renamed it.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	c := e.cur.Load()
	if c.State.Status != shimapi.StatusRunning {
		return errdefs.FailedPrecondition("container %s is %s: its log is not reopened", c.ID, c.State.Status)
	}
	return m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.ReopenLog(ctx, c.ID)
	})
}

// UpdateResources applies new resources to a created or running container
// and records them for ContainerStatus.
func (m *Manager) UpdateResources(ctx context.Context, id string, res *runtime.LinuxContainerResources) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cur.Load()
	if c.State.Status == shimapi.StatusExited {
		return errdefs.FailedPrecondition("container %s has exited", c.ID)
	}
	oci, err := Resources(res, m.cfg.Node)
	if err != nil {
		return err
	}
	b, err := json.Marshal(oci)
	if err != nil {
		return err
	}
	err = m.sandboxes.WithShim(c.PodID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		return sc.UpdateContainer(ctx, shimapi.UpdateArgs{ID: c.ID, Resources: b})
	})
	if err != nil {
		return fmt.Errorf("updating container %s: %w", c.ID, err)
	}
	e.update(func(x *Container) { x.Resources = mergeResources(x.Resources, res) })
	return m.saveRecord(e)
}

// mergeResources is what ContainerStatus reports after an update: the new
// values, keeping the OOM score the update cannot change.
func mergeResources(old, upd *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	r := proto.Clone(upd).(*runtime.LinuxContainerResources)
	if old != nil && r.OomScoreAdj == 0 {
		r.OomScoreAdj = old.OomScoreAdj
	}
	return r
}
