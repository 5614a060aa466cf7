package container

import (
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
)

// failedCreate is what a CreateContainer whose rollback failed knew of
// its container.
type failedCreate struct {
	id, name    string
	sb          *sandbox.Sandbox
	cfg         *runtime.ContainerConfig
	imageID     string
	start       time.Time
	dir, bundle string
}

// keepFailed keeps, as an exited container, one whose creation failed
// with err and whose rollback failed with undoErr: its directories and
// image leases were kept (undo's record steps), and its record is what
// makes RemoveContainer, or RemovePodSandbox, finish the job (the shim's
// remove, the mounts, the directories, the leases). kubelet sees it in
// ListContainers and removes it as any dead container. The name is
// released all the same, so that kubelet's retry can create the container
// meanwhile. It returns the call's error.
func (m *Manager) keepFailed(f failedCreate, err, undoErr error) error {
	why := "CreateContainer failed and so did its rollback: " + undoErr.Error()
	c := &Container{
		ID: f.id, PodID: f.sb.ID, Name: f.name, Config: f.cfg, ImageID: f.imageID, CreatedAt: f.start,
		Bundle: f.bundle, CgroupPath: f.sb.ContainerCgroup(f.id),
		StopSignal: "SIGKILL", // nothing of it is meant to run
		State:      shimapi.ContainerState{ID: f.id, CreatedAt: f.start},
	}
	unknownExit(c, why) // recorded with the rest below
	// Every image volume's lease: removal releases them by index, and
	// releasing one never taken is no error.
	for i, mnt := range f.cfg.GetMounts() {
		if ref := mnt.GetImage().GetImage(); ref != "" {
			if c.ImageVolumes == nil {
				c.ImageVolumes = map[int]string{}
			}
			if img, err := m.images.Resolve(ref); err == nil {
				c.ImageVolumes[i] = img.ID
			} else {
				c.ImageVolumes[i] = ""
			}
		}
	}
	if werr := writeRecord(f.dir, c); werr != nil {
		// Kept in memory only: a restart's Reconcile removes what has no
		// record.
		klog.ErrorS(werr, "Recording a container whose rollback failed", "podSandboxID", f.sb.ID, "containerID", f.id)
	}
	e := m.newEntry(c)
	m.mu.Lock()
	m.ctrs[f.id] = e
	m.mu.Unlock()
	// It appears in ListContainers, exited: both steps, so that an event
	// watcher relists as a lister would find it.
	m.event(e, EventCreated)
	m.event(e, EventStopped)
	klog.InfoS("Keeping a container whose rollback failed, exited, for RemoveContainer", "podSandboxID", f.sb.ID, "containerID", f.id)
	return fmt.Errorf("%w (its rollback failed too: container %s is kept, exited, until RemoveContainer: %v)", err, f.id, undoErr)
}
