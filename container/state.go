package container

import (
	"sync"
	"sync/atomic"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/shim/shimapi"
)

// Container is one published state of a container. It is never modified
// once published.
type Container struct {
	ID         string
	PodID      string
	Name       string // the reserved name
	Config     *runtime.ContainerConfig
	ImageID    string
	CreatedAt  time.Time
	LogPath    string // absolute; empty without a log
	Bundle     string
	CgroupPath string
	User       User
	Resources  *runtime.LinuxContainerResources
	// StopSignal is the signal StopContainer sends first, by name.
	StopSignal string
	// ImageVolumes maps the index of an image mount to the image's ID.
	ImageVolumes map[int]string

	// State is what the shim last reported.
	State shimapi.ContainerState
	// UnseenExit is the exit huskd declared for the container when nobody
	// saw it end (unknownExit), nil until then. It is kept in the record:
	// the shim that would know is gone, and a restart must show the same
	// exit, at the same time, as before.
	UnseenExit *UnseenExit
	// seq is the Seq of the newest shim snapshot State was taken from.
	seq uint64
}

type entry struct {
	// mu serialises lifecycle calls on one container. They hold it across
	// calls to the shim, which snapshots must not wait for: the published
	// state has its own lock, statusMu.
	mu      sync.Mutex
	removed bool

	// statusMu orders the changes of cur, all made by update.
	statusMu sync.Mutex
	cur      atomic.Pointer[Container]
	// changed is told of each change update makes, statusMu held, until
	// the container's deletion has been told (deleted, statusMu): a
	// snapshot taken before the removal may still be applied after it.
	changed func(old, next *Container)
	deleted bool

	// nriStop tells NRI plugins of the container's stop once (nriStop).
	nriStop sync.Once

	// recordMu orders the writes of the container's record, each of the
	// state published when it is written, so that the last one written
	// holds the latest (saveRecord).
	recordMu sync.Mutex
	// savedExit is the exit the record holds, zero before; unrecorded: the
	// record is removed, and not written again. recordMu guards both.
	savedExit  shimapi.ContainerState
	unrecorded bool
	// saveExit writes the record once the container has exited or its
	// exit changed (Manager.saveExit); nil: never.
	saveExit func(*entry)
}

// newEntry is the entry of a container found or made; the manager hears of
// its changes of status.
func (m *Manager) newEntry(c *Container) *entry {
	e := &entry{changed: m.statusChanged, saveExit: m.saveExit}
	if c.State.Status == shimapi.StatusExited {
		e.savedExit = c.State // read from the record, or about to be written in it
	}
	e.cur.Store(c)
	return e
}

// update publishes a copy of the current container changed by fn, and
// returns it. It is the only writer of cur: fn sees the state as it is,
// so no change is lost to another made meanwhile (a shim snapshot against
// Stop's reply, or against UpdateResources' new resources). An exit is
// written to the record before update returns, out of statusMu: a
// snapshot of the pod's other containers need not wait for the disk.
func (e *entry) update(fn func(*Container)) *Container {
	c := e.publish(fn)
	if c.State.Status == shimapi.StatusExited && e.saveExit != nil {
		e.saveExit(e)
	}
	return c
}

func (e *entry) publish(fn func(*Container)) *Container {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	old := e.cur.Load()
	c := *old
	fn(&c)
	e.cur.Store(&c)
	if e.changed != nil && !e.deleted {
		e.changed(old, &c)
	}
	return &c
}

// saveExit writes the container's record when the exit it holds is not
// the one published: the pod's state directory, where the shim keeps
// it, does not survive a reboot. A record that cannot be written leaves
// the exit in memory; a reboot before the next write loses it, and the
// container reports an Unknown exit after it.
func (m *Manager) saveExit(e *entry) {
	e.recordMu.Lock()
	defer e.recordMu.Unlock()
	c := e.cur.Load()
	if e.unrecorded || c.State.Status != shimapi.StatusExited || c.State == e.savedExit {
		return
	}
	if err := writeRecord(m.dir(c.ID), c); err != nil {
		klog.ErrorS(err, "Recording the exit of a container", "containerID", c.ID, "podSandboxID", c.PodID)
		return
	}
	e.savedExit = c.State
}

// saveRecord writes the container's record from its published state,
// after a change of what it was created with (UpdateResources).
func (m *Manager) saveRecord(e *entry) error {
	e.recordMu.Lock()
	defer e.recordMu.Unlock()
	if e.unrecorded {
		return nil
	}
	c := e.cur.Load()
	if err := writeRecord(m.dir(c.ID), c); err != nil {
		return err
	}
	if c.State.Status == shimapi.StatusExited {
		e.savedExit = c.State
	}
	return nil
}

// EventType is a step of a container's life that the event handler hears
// of (the CRI's ContainerEventType).
type EventType int

const (
	// EventCreated: CreateContainer made it (or kept it, exited, after a
	// failed rollback).
	EventCreated EventType = iota
	// EventStarted: it runs, by the shim's reply to StartContainer or its
	// snapshot, whichever came first.
	EventStarted
	// EventStopped: it exited, whether by StopContainer, on its own, or
	// with its shim; or its start failed.
	EventStopped
	// EventDeleted: RemoveContainer removed it.
	EventDeleted
)

// EventFunc hears of each step of each container's life, with the
// container as it is after the step (EventDeleted: as it was removed). It
// is called with that container's status lock held, so that the steps of
// one container come in order: it must not block, and may read the
// manager (Get, List) but not change it.
type EventFunc func(EventType, *Container)

// SetEventFunc sets who hears of the containers' steps. Call it before
// Load; nil: nobody.
func (m *Manager) SetEventFunc(fn EventFunc) { m.onEvent = fn }

// reasonOOMKilled is the shim's Reason for a container the kernel's OOM
// killer took.
const reasonOOMKilled = "OOMKilled"

// statusChanged turns a change of the published state into an event, and
// counts an OOM kill when the change says so (once: a published state
// never goes back).
// Recovery's changes (Load, the shims' snapshots, Reconcile) go to the
// handler too, before huskd serves anyone: nobody can have subscribed.
func (m *Manager) statusChanged(old, next *Container) {
	if old.State.Reason != reasonOOMKilled && next.State.Reason == reasonOOMKilled {
		metrics.OOMKills.Inc()
	}
	if m.cfg.NRI != nil && next.State.Status == shimapi.StatusExited && old.State.Status != shimapi.StatusExited {
		// NRI plugins hear of the exit whoever caused it; their answer
		// may take long, and this must not block.
		go m.nriExited(next.ID)
	}
	if m.onEvent == nil || old.State.Status == next.State.Status {
		return
	}
	switch next.State.Status {
	case shimapi.StatusRunning:
		m.onEvent(EventStarted, next)
	case shimapi.StatusExited:
		if old.State.Status == shimapi.StatusCreated && !next.State.StartedAt.IsZero() {
			// It ran and exited before Start's reply came: the shim's
			// snapshot said so first. It started all the same.
			m.onEvent(EventStarted, next)
		}
		m.onEvent(EventStopped, next)
	}
}

// event tells the handler of a step that is not a change of status
// (created, deleted), in order with the container's other steps.
func (m *Manager) event(e *entry, t EventType) {
	if m.onEvent == nil {
		return
	}
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	if e.deleted {
		return
	}
	e.deleted = t == EventDeleted
	m.onEvent(t, e.cur.Load())
}

// UnseenExit is an exit huskd declared itself: what ContainerStatus shows
// of a container whose end nobody saw.
type UnseenExit struct {
	FinishedAt time.Time `json:"finishedAt"`
	ExitCode   int       `json:"exitCode"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message"`
}

// unknownExit records that a container ended where nobody saw it, unless
// its exit is known already: the one declared before if there is one
// (c.UnseenExit, from the record), else one declared now. It returns true
// when it declared one now; update writes it to the record, as any exit,
// so that a restart shows the same exit and time.
func unknownExit(c *Container, why string) bool {
	if c.State.Status == shimapi.StatusExited {
		return false
	}
	declared := c.UnseenExit == nil
	if declared {
		finished := c.State.FinishedAt
		if finished.IsZero() {
			finished = time.Now()
		}
		c.UnseenExit = &UnseenExit{FinishedAt: finished, ExitCode: 255, Reason: "Unknown", Message: why}
	}
	u, st := c.UnseenExit, &c.State
	st.Status, st.ExitCode, st.Reason, st.Message, st.FinishedAt = shimapi.StatusExited, u.ExitCode, u.Reason, u.Message, u.FinishedAt
	return declared
}

// declareExit applies fn to the container; update writes the record when
// fn declared an unseen exit (fn returns unknownExit's answer), as for
// any exit. A record that cannot be written leaves the exit in memory:
// the next restart declares it again, at its own time.
func (m *Manager) declareExit(e *entry, fn func(x *Container) bool) {
	e.update(func(x *Container) { fn(x) })
}

var statusRank = map[string]int{shimapi.StatusCreated: 1, shimapi.StatusRunning: 2, shimapi.StatusExited: 3}

// report applies what the shim said of a container: next, from snapshot
// seq, or from a reply to a call when seq is 0. A container never goes
// back in its life (created, running, exited): a report that would move
// it back is ignored, and so is a snapshot older than one applied already
// (a pod's last snapshot read back from its file after the monitor's).
// Replies carry no Seq; the shim answers a call after the change it made,
// so a reply is never older than the snapshots that came before it, and
// the order of the statuses is all it is checked against. Only State
// changes: the resources UpdateResources recorded stay.
func report(c *Container, next shimapi.ContainerState, seq uint64) {
	if next.ID != c.ID || statusRank[next.Status] < statusRank[c.State.Status] || seq != 0 && seq < c.seq {
		return
	}
	c.State = next
	c.seq = max(c.seq, seq)
}

// Snapshot applies what a pod's shim reports (sandbox.Observer).
func (m *Manager) Snapshot(podID string, snap shimapi.Snapshot, shimGone bool) {
	known := map[string]shimapi.ContainerState{}
	for _, st := range validStates(podID, snap.Containers) {
		known[st.ID] = st
	}
	m.mu.RLock()
	var mine []*entry
	for _, e := range m.ctrs {
		if e.cur.Load().PodID == podID {
			mine = append(mine, e)
		}
	}
	m.mu.RUnlock()
	seen := map[string]bool{}
	for _, e := range mine {
		c := e.cur.Load()
		seen[c.ID] = true
		st, ok := known[c.ID]
		if !shimGone && (!ok || st == c.State) {
			// Nothing new: the container keeps its published pointer, which
			// the list caches in cri/ compare.
			continue
		}
		m.declareExit(e, func(x *Container) bool {
			if ok {
				report(x, st, snap.Seq)
			}
			return shimGone && unknownExit(x, "the pod's shim is gone")
		})
	}
	if !shimGone {
		var orphans []string
		for id := range known {
			if !seen[id] {
				orphans = append(orphans, id)
			}
		}
		m.orphanMu.Lock()
		m.orphans[podID] = orphans
		m.orphanMu.Unlock()
	}
}
