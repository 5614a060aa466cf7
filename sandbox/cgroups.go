package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"
)

// CleanCgroupParent checks a pod's cgroup_parent (cgroupfs form, e.g.
// /kubepods/burstable/pod<uid>) and returns it cleaned and absolute. A
// parent that climbs out of the hierarchy with ".." is refused rather than
// silently clamped.
func CleanCgroupParent(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", errors.New("contains a NUL byte")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", errors.New(`must not contain ".."`)
		}
	}
	return path.Clean("/" + p), nil
}

// podCgroupPath is the cgroup of a pod's pause: <parent>/<pod-id>, as
// containerd lays it out.
func podCgroupPath(parent, id string) string {
	return path.Join(parent, id)
}

func cgroupManager(p string) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: p, Resources: &cgroups.Resources{}}
	if cgroups.IsCgroup2UnifiedMode() {
		return fs2.NewManager(cg, path.Join("/sys/fs/cgroup", p))
	}
	return fs.NewManager(cg, nil)
}

// DestroyCgroup kills every process left in the cgroup at p and removes it
// from every hierarchy. It is how a pod is cleaned when its shim is gone
// (the shim would otherwise do this through libcontainer). A cgroup that
// does not exist is fine.
func DestroyCgroup(p string, timeout time.Duration) error {
	m, err := cgroupManager(p)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		pids, err := m.GetAllPids()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("listing processes of cgroup %s: %w", p, err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has %d processes after SIGKILL", p, len(pids))
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m.Destroy()
}

// removeEmptyCgroup removes the cgroup at p from every hierarchy where it
// exists and is empty; the first other failure (a child cgroup: EBUSY) is
// returned after trying the rest.
func removeEmptyCgroup(p string) error {
	if p == "/" {
		return nil
	}
	m, err := cgroupManager(p)
	if err != nil {
		return err
	}
	var first error
	for _, dir := range m.GetPaths() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}
