package cri

import (
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// layerUsage measures the containers' writable layers for the stats calls.
//
// CPU and memory are read on every call: they are four small cgroup
// files, read through files kept open (cgroupReaders). The writable layer
// is a walk of every file the container wrote, whose cost grows with them
// (~0.1 ms for the near-empty layer of most containers on a loaded 2-core
// machine, more than the cgroup reads; ~100 ms for 100,000 files), so a
// walk is reused while it is young: for layerReuseFactor times what it
// cost, at least layerMinAge and at most layerMaxAge. A caller that asks
// every second or more often (crictl stats, a monitoring agent) thus walks
// each layer at most once a second, and a big layer takes at most ~2% of
// the time between calls. kubelet asks every ~10 s and so gets a walk of
// its call. The FilesystemUsage carries the time of its walk, which can
// then be older than the CPU and memory readings of the same answer; those
// are never reused. Concurrent calls about one container share one walk.
type layerUsage struct {
	now  func() time.Time
	walk func(dir string) (bytes, inodes uint64, err error)

	flight singleflight.Group
	mu     sync.Mutex
	byID   map[string]layerReading
}

const (
	layerReuseFactor = 50
	layerMinAge      = time.Second
	layerMaxAge      = 10 * time.Second // kubelet's housekeeping period
)

// layerReading is one walk of a writable layer.
type layerReading struct {
	bytes, inodes uint64
	at            time.Time // the walk started
	took          time.Duration
}

func newLayerUsage(walk func(string) (uint64, uint64, error)) *layerUsage {
	return &layerUsage{now: time.Now, walk: walk, byID: map[string]layerReading{}}
}

// get returns the usage of container id's writable layer dir: the last
// walk while it is young enough, else a new one.
func (l *layerUsage) get(id, dir string) (layerReading, error) {
	now := l.now()
	l.mu.Lock()
	r, ok := l.byID[id]
	l.mu.Unlock()
	if ok && now.Sub(r.at) < min(max(r.took*layerReuseFactor, layerMinAge), layerMaxAge) {
		return r, nil
	}
	v, err, _ := l.flight.Do(id, func() (any, error) {
		start := l.now()
		b, n, err := l.walk(dir)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			delete(l.byID, id)
			return layerReading{}, err
		}
		r := layerReading{bytes: b, inodes: n, at: start, took: l.now().Sub(start)}
		l.byID[id] = r
		return r, nil
	})
	return v.(layerReading), err
}

// forget drops the walks of the containers not in keep.
func (l *layerUsage) forget(keep map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.byID {
		if !keep[id] {
			delete(l.byID, id)
		}
	}
}
