package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/shim/shimapi"
)

// Recover loads the sandboxes a previous huskd left, reconnects to their
// shims, and tears down what a crash interrupted: a sandbox still being
// created, or pod state with no record. Call it once, before serving.
func (m *Manager) Recover(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(m.cfg.Root, "pods"))
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var ready []*pod
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		known[id] = true
		if !ids.Valid(id) {
			klog.ErrorS(nil, "Not a pod sandbox directory; leaving it alone", "dir", m.rootDir(id))
			continue
		}
		sb, err := readRecord(m.rootDir(id))
		if err == nil {
			err = checkRecord(sb, id, m.stateDir(id))
		}
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Crashed between creating the directory and writing the record:
			// nothing else was created yet.
			klog.InfoS("Removing a sandbox directory without a record", "podSandboxID", id)
			if err := m.teardown(ctx, &Sandbox{ID: id}); err != nil {
				klog.ErrorS(err, "Removing an interrupted sandbox", "podSandboxID", id)
			}
			continue
		case err != nil:
			klog.ErrorS(err, "Unreadable or invalid sandbox record; leaving it alone", "podSandboxID", id)
			continue
		}
		if sb.State == StateCreating {
			klog.InfoS("Rolling back a RunPodSandbox interrupted by a restart", "podSandboxID", id)
			err := m.teardown(ctx, sb)
			if err == nil {
				continue
			}
			// As after a failed rollback in RunPodSandbox (keepFailed): the
			// pod is listed NotReady until RemovePodSandbox finishes.
			klog.ErrorS(err, "Rolling back an interrupted sandbox; keeping it NotReady for RemovePodSandbox", "podSandboxID", id)
			sb.State, sb.Reason = StateNotReady, "RunPodSandbox interrupted by a restart, and its rollback failed: "+err.Error()
			if werr := writeRecord(m.rootDir(id), sb); werr != nil {
				klog.ErrorS(werr, "Recording a sandbox whose rollback failed", "podSandboxID", id)
			}
		}
		m.securePodDirs(sb)
		p := &pod{id: id, rootDir: m.rootDir(id)}
		p.cur.Store(sb)
		m.mu.Lock()
		m.pods[id] = p
		m.mu.Unlock()
		m.names.Restore(sb.Name, id)
		if sb.State == StateReady {
			ready = append(ready, p)
		} else {
			// Stopped: what its shim last wrote is all there is.
			m.observer.Snapshot(id, m.lastSnapshot(id), true)
		}
	}
	// Every shim is dialled at once, each with a bound: one that does not
	// answer costs the restart that bound, not its share of a queue.
	var wg sync.WaitGroup
	for _, p := range ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.reconnect(ctx, p)
		}()
	}
	wg.Wait()

	// Volatile state whose record is gone: a crash during RemovePodSandbox.
	states, err := os.ReadDir(filepath.Join(m.cfg.State, "pods"))
	if err != nil {
		return err
	}
	for _, e := range states {
		if e.IsDir() && !known[e.Name()] && ids.Valid(e.Name()) {
			klog.InfoS("Removing pod state without a record", "podSandboxID", e.Name())
			if err := m.teardown(ctx, &Sandbox{ID: e.Name()}); err != nil {
				klog.ErrorS(err, "Removing orphaned pod state", "podSandboxID", e.Name())
			}
		}
	}
	m.mu.Lock()
	m.dropDefaultParentLocked() // a crash may have left it with no pod
	m.mu.Unlock()
	klog.InfoS("Recovered pod sandboxes", "count", len(m.pods))
	return nil
}

// reasonRebooted is why a pod is not ready when its state directory is
// gone: the state is on tmpfs, which only a reboot (or an operator)
// empties, and every process of the pod went with it.
const reasonRebooted = "the pod's state directory is gone, with its processes: the node rebooted"

// goneReason is why a pod whose shim is gone is no longer ready.
func (m *Manager) goneReason(id string) string {
	if _, err := os.Stat(m.stateDir(id)); errors.Is(err, os.ErrNotExist) {
		return reasonRebooted
	}
	return errShimGone.Error()
}

// reconnectTimeout bounds one attempt to dial a shim and get its answer.
// A shim answers Info in well under a millisecond; a restart waits this
// long for one that does not.
const reconnectTimeout = 2 * time.Second

// errShimGone is a shim that is not there to answer: nothing listens on
// its socket.
var errShimGone = errors.New("shim is not running")

// reconnect dials a Ready pod's shim and hands its snapshot to the
// observer. A shim that is gone, or whose pause has exited, leaves the pod
// NotReady. A shim that is there but does not answer (stopped, or starved
// of CPU) is not dead: the pod keeps its state and its containers what the
// shim last wrote, calls that need the shim fail as Unavailable, and the
// shim is asked again until it answers or is gone (keepAsking). Declaring
// it dead would report its running containers exited, and kubelet would
// start second copies of them.
func (m *Manager) reconnect(ctx context.Context, p *pod) {
	err := m.tryReconnect(ctx, p)
	switch {
	case err == nil:
		return
	case errors.Is(err, errShimGone):
		m.shimGone(p, m.goneReason(p.id))
		return
	}
	klog.ErrorS(err, "Shim does not answer; keeping the pod as it was and asking again", "podSandboxID", p.id)
	m.observer.Snapshot(p.id, m.lastSnapshot(p.id), false)
	p.mu.Lock()
	p.unanswered = true
	p.mu.Unlock()
	go m.keepAsking(ctx, p)
}

// keepAsking asks an unanswering shim again, once a second, until it
// answers, is gone, or the pod is no longer Ready (stopped meanwhile:
// StopPodSandbox kills a shim it cannot reach) or huskd stops.
func (m *Manager) keepAsking(ctx context.Context, p *pod) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.RLock()
		done := p.removed || !p.unanswered || p.cur.Load().State != StateReady
		p.mu.RUnlock()
		if done {
			return
		}
		switch err := m.tryReconnect(ctx, p); {
		case err == nil:
			return
		case errors.Is(err, errShimGone):
			m.shimGone(p, m.goneReason(p.id))
			return
		}
	}
}

// tryReconnect dials the pod's shim and asks for its state, within
// reconnectTimeout; on an answer the pod is the shim's again (snapshot,
// monitor). It fails with errShimGone when nothing listens on the socket.
func (m *Manager) tryReconnect(ctx context.Context, p *pod) error {
	sb := p.cur.Load()
	dctx, cancel := context.WithTimeout(ctx, reconnectTimeout)
	defer cancel()
	c, err := dialShim(dctx, m.stateDir(sb.ID))
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return errShimGone
		}
		return fmt.Errorf("dialling the shim: %w", err)
	}
	info, err := c.Info(dctx)
	if err != nil {
		c.Close()
		return fmt.Errorf("asking the shim for its state: %w", err)
	}
	p.mu.Lock()
	if p.removed || p.shim != nil || p.cur.Load().State != StateReady {
		p.mu.Unlock()
		c.Close() // stopped or removed meanwhile: nothing to take back
		return nil
	}
	p.shim, p.unanswered = c, false
	m.monitor(p, c)
	p.mu.Unlock()
	// The observer's snapshots are ordered by their sequence number, so
	// one the monitor delivered first is not undone by this older one.
	m.observer.Snapshot(sb.ID, info.Snapshot, false)
	if !info.Snapshot.Pause.Running {
		m.notReady(p, fmt.Sprintf("pause exited with code %d", info.Snapshot.Pause.ExitCode))
		return nil
	}
	klog.InfoS("Reconnected to shim", "podSandboxID", sb.ID, "shimPid", info.ShimPID)
	return nil
}

// teardown removes everything a sandbox may have: used where no shim can
// be trusted to do it. sb may carry only an ID.
func (m *Manager) teardown(ctx context.Context, sb *Sandbox) error {
	stateDir := m.stateDir(sb.ID)
	if c, err := dialShim(ctx, stateDir); err == nil {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.StopTimeout)
		_, err := c.Stop(sctx, shimapi.StopArgs{Timeout: m.cfg.StopTimeout})
		cancel()
		c.Close()
		if err != nil {
			klog.ErrorS(err, "Stopping an orphaned shim", "podSandboxID", sb.ID)
		}
	}
	if err := killShim(shimPIDFromFile(stateDir), sb.ID, m.cfg.StopTimeout); err != nil {
		return err
	}
	for _, cg := range []string{sb.CgroupPath, sb.PodCgroup} {
		if cg == "" {
			continue
		}
		if err := cgroup.Destroy(cg, m.cfg.StopTimeout); err != nil {
			return err
		}
	}
	// The record of an interrupted creation does not say whether CNI ADD
	// ran: DEL anyway (from libcni's cache when ADD returned, else with the
	// pod's config, port mappings included, and the current network).
	if err := m.teardownNetwork(ctx, sb); err != nil {
		return err
	}
	return m.removeFiles(sb)
}

func readRecord(dir string) (*Sandbox, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	sb, err := unmarshalSandbox(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return sb, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o600)
}
