package cri

import (
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statsCache answers ListContainerStats from memory. kubelet lists the
// stats of every container every few seconds; reading one container's
// cgroup and writable layer costs ~0.1 ms here, so 200 containers would
// cost 20 ms a call. Each container's stats are kept with the time they
// were read and served while younger than the period; a refresher reads
// again, every period, the containers asked about in the last idle
// window, so that a caller that asks regularly is always served from
// memory with stats at most a period old. CPU rates (usage_nano_cores)
// are those between successive readings, whoever made them.
type statsCache struct {
	period time.Duration
	idle   time.Duration
	now    func() time.Time
	// read reads a container's stats afresh; ok is false when the
	// container is gone.
	read func(id string, now time.Time) (st *runtime.ContainerStats, ok bool)

	// startRefresher starts refresh; tests drive refreshOnce instead.
	startRefresher func()

	mu      sync.Mutex
	byID    map[string]*cachedStats
	running bool // the refresher runs
}

type cachedStats struct {
	stats *runtime.ContainerStats
	at    time.Time // read
	asked time.Time // last served
}

func newStatsCache(period time.Duration, read func(string, time.Time) (*runtime.ContainerStats, bool)) *statsCache {
	c := &statsCache{period: period, idle: time.Minute, now: time.Now, read: read, byID: map[string]*cachedStats{}}
	c.startRefresher = func() { go c.refresh() }
	return c
}

// get returns a container's stats, read now unless a reading younger than
// the period is kept. The result is shared: callers must not change it.
func (c *statsCache) get(id string) (*runtime.ContainerStats, bool) {
	now := c.now()
	c.mu.Lock()
	if e, ok := c.byID[id]; ok && now.Sub(e.at) < c.period {
		e.asked = now
		c.mu.Unlock()
		return e.stats, true
	}
	c.mu.Unlock()
	st, ok := c.read(id, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		delete(c.byID, id)
		return nil, false
	}
	c.byID[id] = &cachedStats{stats: st, at: now, asked: now}
	if !c.running && c.period > 0 {
		c.running = true
		c.startRefresher()
	}
	return st, true
}

// refresh rereads, every period, the containers asked about within the
// idle window, and forgets the others; it ends when none is left.
func (c *statsCache) refresh() {
	t := time.NewTicker(c.period)
	defer t.Stop()
	for range t.C {
		if !c.refreshOnce() {
			return
		}
	}
}

// refreshOnce does one round of refresh; false means nothing is left to
// refresh and the refresher has stopped.
func (c *statsCache) refreshOnce() bool {
	now := c.now()
	c.mu.Lock()
	var ids []string
	for id, e := range c.byID {
		if now.Sub(e.asked) > c.idle {
			delete(c.byID, id)
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		c.running = false
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()
	for _, id := range ids {
		at := c.now()
		st, ok := c.read(id, at)
		c.mu.Lock()
		if e, kept := c.byID[id]; !ok && kept {
			delete(c.byID, id)
		} else if ok && kept {
			e.stats, e.at = st, at
		}
		c.mu.Unlock()
	}
	return true
}
