package cri

import (
	"sync"

	"github.com/huskrt/husk/container"
)

// cgroupReaders keeps a container.CgroupReader open per container and pod
// (keyed as cpuRates is: the container ID, "pod/<id>"), so that a stats
// call reads each cgroup's counters with three or four preads instead of
// opening as many files by path. Readers of containers and pods that are gone are
// closed by forget, or when a read fails.
type cgroupReaders struct {
	mu   sync.Mutex
	byID map[string]*openCgroup
}

type openCgroup struct {
	path string
	r    *container.CgroupReader
}

// read reads the cgroup at path (cgroupfs form) now, through the reader
// kept for key, opened if there is none.
func (c *cgroupReaders) read(key, path string) (container.CgroupStats, error) {
	for retry := true; ; retry = false {
		r, err := c.reader(key, path)
		if err != nil {
			return container.CgroupStats{}, err
		}
		st, err := r.Read()
		if err == nil {
			return st, nil
		}
		// Gone (the kernel answers ENODEV once a cgroup is removed), or
		// closed by a forget meanwhile: open it again, once.
		c.drop(key, r)
		if !retry {
			return container.CgroupStats{}, err
		}
	}
}

func (c *cgroupReaders) reader(key, path string) (*container.CgroupReader, error) {
	c.mu.Lock()
	if o, ok := c.byID[key]; ok && o.path == path {
		c.mu.Unlock()
		return o.r, nil
	}
	c.mu.Unlock()
	r, err := container.OpenCgroup(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[string]*openCgroup{}
	}
	if o, ok := c.byID[key]; ok {
		if o.path == path { // opened by a concurrent call meanwhile
			r.Close()
			return o.r, nil
		}
		o.r.Close()
	}
	c.byID[key] = &openCgroup{path: path, r: r}
	return r, nil
}

// drop closes r and forgets it if it is still key's reader.
func (c *cgroupReaders) drop(key string, r *container.CgroupReader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.byID[key]; ok && o.r == r {
		delete(c.byID, key)
	}
	r.Close()
}

// forget closes the readers whose keys are not in keep.
func (c *cgroupReaders) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, o := range c.byID {
		if !keep[k] {
			o.r.Close()
			delete(c.byID, k)
		}
	}
}
