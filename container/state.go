package container

import (
	"sync"
	"sync/atomic"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

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
}

func newEntry(c *Container) *entry {
	e := &entry{}
	e.cur.Store(c)
	return e
}

// update publishes a copy of the current container changed by fn, and
// returns it. It is the only writer of cur: fn sees the state as it is,
// so no change is lost to another made meanwhile (a shim snapshot against
// Stop's reply, or against UpdateResources' new resources).
func (e *entry) update(fn func(*Container)) *Container {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	c := *e.cur.Load()
	fn(&c)
	e.cur.Store(&c)
	return &c
}

// unknownExit records that a container ended where nobody saw it, unless
// its exit is known already.
func unknownExit(c *Container, why string) {
	if c.State.Status == shimapi.StatusExited {
		return
	}
	st := &c.State
	st.Status, st.ExitCode, st.Reason, st.Message = shimapi.StatusExited, 255, "Unknown", why
	if st.FinishedAt.IsZero() {
		st.FinishedAt = time.Now()
	}
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
		e.update(func(x *Container) {
			if ok {
				report(x, st, snap.Seq)
			}
			if shimGone {
				unknownExit(x, "the pod's shim is gone")
			}
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
