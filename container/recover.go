package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
)

// Load reads the containers a previous huskd left. Their states arrive
// with the shims' snapshots during the sandbox manager's recovery.
func (m *Manager) Load() error {
	entries, err := os.ReadDir(filepath.Join(m.cfg.Root, "containers"))
	if err != nil {
		return err
	}
	for _, d := range entries {
		if !ids.Valid(d.Name()) {
			klog.ErrorS(nil, "Not a container directory; leaving it alone", "dir", m.dir(d.Name()))
			continue
		}
		c, err := readRecord(m.dir(d.Name()))
		if err == nil {
			err = checkRecord(c, d.Name(), bundleDir(m.sandboxes, c.PodID, c.ID))
		}
		if err != nil {
			klog.ErrorS(err, "Unreadable or invalid container record; leaving it alone", "containerID", d.Name())
			continue
		}
		m.ctrs[c.ID] = m.newEntry(c)
		m.names.Restore(c.Name, c.ID)
	}
	return nil
}

// Reconcile runs after the sandbox manager's recovery: containers of pods
// that are gone are removed, containers no shim reported are recorded as
// exited, and what a crash left without a record goes.
func (m *Manager) Reconcile(ctx context.Context) {
	for _, c := range m.List() {
		sb, err := m.sandboxes.Get(c.PodID)
		if err != nil {
			klog.InfoS("Removing a container whose pod is gone", "containerID", c.ID, "podSandboxID", c.PodID)
			if err := m.Remove(ctx, c.ID); err != nil {
				klog.ErrorS(err, "Removing a container whose pod is gone", "containerID", c.ID)
			}
			continue
		}
		if c.CgroupPath != sb.ContainerCgroup(c.ID) {
			// Its record says a cgroup not beside its pod's: nothing of it
			// is acted on.
			klog.ErrorS(nil, "Invalid container record: its cgroup is not under its pod's; leaving it alone",
				"containerID", c.ID, "podSandboxID", c.PodID, "cgroup", c.CgroupPath)
			m.mu.Lock()
			delete(m.ctrs, c.ID)
			m.mu.Unlock()
			m.names.Release(c.Name, c.ID)
			continue
		}
		if c.State.Status == "" {
			e, _ := m.lookup(c.ID)
			m.declareExit(e, func(x *Container) bool {
				if x.State.Status != "" {
					return false
				}
				x.State = shimapi.ContainerState{ID: x.ID, CreatedAt: x.CreatedAt}
				return unknownExit(x, "no shim reported it")
			})
		}
	}
	m.orphanMu.Lock()
	orphans := m.orphans
	m.orphans = map[string][]string{}
	m.orphanMu.Unlock()
	for podID, ids := range orphans {
		for _, id := range ids {
			klog.InfoS("Removing a container created by a crashed huskd", "podSandboxID", podID, "containerID", id)
			_ = m.sandboxes.WithShim(podID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
				return sc.RemoveContainer(ctx, id)
			})
			_ = m.removeFiles(&Container{ID: id, Bundle: bundleDir(m.sandboxes, podID, id)})
		}
	}
	// Writable layers and leases with no record: a crash mid-create.
	dirs, _ := os.ReadDir(filepath.Join(m.cfg.Root, "containers"))
	for _, d := range dirs {
		if _, err := m.lookup(d.Name()); err == nil || !ids.Valid(d.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.dir(d.Name()), "container.json")); err == nil {
			continue // unreadable record: left alone, as Load said
		}
		klog.InfoS("Removing what an interrupted CreateContainer left", "containerID", d.Name())
		_ = os.RemoveAll(m.dir(d.Name()))
		_ = m.images.Release(d.Name())
	}
	// Leases whose container has no directory at all: a crash between
	// the lease and the directories of CreateContainer (the lease comes
	// first, so that the image's layers cannot go while the rootfs is
	// mounted from them), or between RemoveContainer's removal of the
	// record and its release of the lease. Left, they would keep the
	// image's layers on disk after the image is removed, for ever.
	for _, owner := range m.images.LeaseOwners() {
		id, _, _ := strings.Cut(owner, "/") // "<id>" or "<id>/volume-<n>"
		if _, err := m.lookup(id); err == nil || !ids.Valid(id) {
			continue
		}
		if _, err := os.Lstat(m.dir(id)); err == nil {
			continue // an unreadable record's: left alone, as Load said
		}
		klog.InfoS("Ending the image lease of a container that has no record", "containerID", id, "lease", owner)
		if err := m.images.Release(owner); err != nil {
			klog.ErrorS(err, "Ending the image lease of a container that has no record", "containerID", id, "lease", owner)
		}
	}
	for _, podDir := range m.sandboxes.StateDirs() {
		bundles, _ := filepath.Glob(filepath.Join(podDir, "containers", "*"))
		for _, b := range bundles {
			if _, err := m.lookup(filepath.Base(b)); err == nil || !ids.Valid(filepath.Base(b)) {
				continue
			}
			_ = m.removeFiles(&Container{ID: filepath.Base(b), Bundle: b})
		}
	}
}
