// Package cgroup owns how husk names, opens and removes the cgroups of
// pods and containers under either cgroup driver.
//
// Everywhere in husk a cgroup is known by its cgroupfs path (the path
// under the hierarchy's mount, e.g. /kubepods/burstable/pod1/<id>): that
// is what stats read and what records keep. The driver decides only
// names and who creates and removes the cgroup. With cgroupfs a pod's or
// container's cgroup is <parent>/<id>, made and removed by husk (through
// libcontainer). With systemd, as kubelet's systemd driver expects and as
// containerd and CRI-O do it, the parent is a slice
// (kubepods-burstable-pod1.slice) and each pod and container is a
// transient scope in it, cri-husk-<id>.scope, that systemd creates and
// removes when asked over D-Bus; the OCI spec names it
// "<slice>:cri-husk:<id>". A path's last element says which driver made
// it, so a record read back after a restart needs no other hint.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	"golang.org/x/sys/unix"
)

// Driver is how pods' cgroups are managed: kubelet's cgroupDriver must
// match it (RuntimeConfig tells kubelet which).
type Driver string

const (
	Cgroupfs Driver = "cgroupfs"
	Systemd  Driver = "systemd"
)

// ScopePrefix starts the name of every scope husk asks systemd for, as
// cri-containerd and crio do theirs: a node admin sees whose it is.
const ScopePrefix = "cri-husk"

// ParseDriver reads the [runtime] cgroup_driver setting; empty is
// cgroupfs.
func ParseDriver(s string) (Driver, error) {
	switch Driver(s) {
	case "", Cgroupfs:
		return Cgroupfs, nil
	case Systemd:
		return Systemd, nil
	}
	return "", fmt.Errorf("cgroup driver %q is neither %q nor %q", s, Cgroupfs, Systemd)
}

// DefaultParent is where pods go whose config names no cgroup parent.
func (d Driver) DefaultParent() string {
	if d == Systemd {
		return "husk.slice"
	}
	return "/husk"
}

// Check reports whether the driver can work on this host: systemd's needs
// systemd as the init system.
func (d Driver) Check() error {
	if d == Systemd && !systemd.IsRunningSystemd() {
		return errors.New("the systemd cgroup driver needs systemd as the init system (/run/systemd/system is missing)")
	}
	return nil
}

// Parent resolves a pod's cgroup_parent to the cgroupfs path of the
// cgroup its pause and containers go under. With cgroupfs it is a path,
// made absolute and cleaned; one that climbs out of the hierarchy with
// ".." or names a ':' (the systemd form's separator) is refused rather
// than clamped. With systemd it is a slice: its name
// (kubepods-besteffort-pod<uid>.slice, as crictl users write it), expanded
// as systemd nests slices, or that expansion itself, which is what
// kubelet's systemd driver sends
// (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice).
// A path is refused unless it is where systemd puts its last slice: the
// pod's cgroup must be where kubelet looks for it.
func (d Driver) Parent(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", errors.New("contains a NUL byte")
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", errors.New(`must not contain ".."`)
	}
	clean := path.Clean("/" + p)
	if d != Systemd {
		if strings.ContainsRune(p, ':') {
			return "", errors.New(`contains ":": a systemd slice:prefix:name is not a cgroupfs path (the cgroupfs driver is on)`)
		}
		return clean, nil
	}
	exp, err := systemd.ExpandSlice(path.Base(clean))
	if err != nil || strings.ContainsRune(p, ':') {
		return "", errors.New("is not a systemd slice (the systemd cgroup driver is on): want a slice name such as kubepods-besteffort-pod<uid>.slice or its path, /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice")
	}
	if strings.ContainsRune(p, '/') && exp != clean {
		return "", fmt.Errorf("is not where systemd puts slice %s (%s)", path.Base(clean), exp)
	}
	return exp, nil
}

// Child is the cgroupfs path of the pod's or container's cgroup id under
// parent (a path Parent returned).
func (d Driver) Child(parent, id string) string {
	if d == Systemd {
		return path.Join(parent, scopeName(id))
	}
	return path.Join(parent, id)
}

// PodCgroup is the cgroupfs path of the cgroup husk makes for pod id
// when its config names no cgroup_parent: <parent>/pod<id> with cgroupfs,
// the slice <parent's name>-pod<id>.slice in parent with systemd (as
// kubelet names its pod slices). The pod's pause and containers go in it,
// and its limits are the pod's resources and overhead. A pod with a
// cgroup_parent has none: that parent is kubelet's pod cgroup.
func (d Driver) PodCgroup(parent, id string) string {
	if d == Systemd {
		prefix := strings.TrimSuffix(sliceOf(parent), ".slice") + "-"
		if prefix == "--" {
			prefix = ""
		}
		return path.Join(parent, prefix+"pod"+id+".slice")
	}
	return path.Join(parent, "pod"+id)
}

// OwnsPod reports whether p, read back from a record, can be the cgroup
// PodCgroup made for pod id: it is removed with everything in it.
func OwnsPod(p, id string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	base := path.Base(p)
	if base == "pod"+id {
		return true
	}
	prefix, ok := strings.CutSuffix(base, "pod"+id+".slice")
	return ok && (prefix == "" || strings.HasSuffix(prefix, "-"))
}

// Sibling is the cgroupfs path of id's cgroup beside the one at p, made by
// the driver that made p's: a container's beside its pod's pause.
func Sibling(p, id string) string {
	if _, ok := scopeID(p); ok {
		return Systemd.Child(path.Dir(p), id)
	}
	return Cgroupfs.Child(path.Dir(p), id)
}

func scopeName(id string) string { return ScopePrefix + "-" + id + ".scope" }

// scopeID returns the id of a husk scope's cgroupfs path, and whether p is
// one.
func scopeID(p string) (string, bool) {
	id, ok := strings.CutPrefix(path.Base(p), ScopePrefix+"-")
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, ".scope")
	return id, ok && id != ""
}

// sliceOf is the unit name of the slice whose cgroupfs path is dir: the
// last element, or "-.slice" for the root.
func sliceOf(dir string) string {
	if dir == "/" {
		return "-.slice"
	}
	return path.Base(dir)
}

// SpecPath is the OCI spec's linux.cgroupsPath for the cgroup at p: p
// itself, or the systemd form <slice>:cri-husk:<id> for a husk scope,
// which husk-runc hands to libcontainer's systemd manager.
func SpecPath(p string) string {
	if id, ok := scopeID(p); ok {
		return sliceOf(path.Dir(p)) + ":" + ScopePrefix + ":" + id
	}
	return p
}

// IsSystemdSpecPath reports whether an OCI spec's cgroupsPath is in the
// systemd form slice:prefix:name. Parent refuses ':' in cgroupfs paths,
// so husk's two forms cannot be confused.
func IsSystemdSpecPath(p string) bool {
	parts := strings.Split(p, ":")
	return len(parts) == 3 && (parts[0] == "" || strings.HasSuffix(parts[0], ".slice")) && !strings.Contains(parts[0], "/")
}

// Owns reports whether p, read back from a record, can be the cgroup husk
// made for id: an absolute clean path ending in id (cgroupfs) or in id's
// scope (systemd). Records are checked before their cgroups are killed.
func Owns(p, id string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	if path.Base(p) == id {
		return true
	}
	sid, ok := scopeID(p)
	return ok && sid == id
}

// Manager opens the cgroup at p (cgroupfs form) with the manager of the
// driver that made it: systemd's for a husk scope (its Destroy stops the
// unit over D-Bus), else cgroupfs' (v1 or v2 as the host mounts them).
func Manager(p string) (cgroups.Manager, error) {
	return managerWith(p, &cgroups.Resources{})
}

// managerWith is Manager with the resources a new cgroup starts with.
// Devices are never husk's to set on a pod's or parent's cgroup: an empty
// list would deny every device below it.
func managerWith(p string, r *cgroups.Resources) (cgroups.Manager, error) {
	r.SkipDevices = true
	cg := &cgroups.Cgroup{Resources: r}
	if id, ok := scopeID(p); ok {
		cg.Systemd, cg.Parent, cg.ScopePrefix, cg.Name = true, sliceOf(path.Dir(p)), ScopePrefix, id
	} else if isSlice(p) {
		// A pod's slice (PodCgroup): systemd makes and removes it.
		cg.Systemd, cg.Parent, cg.Name = true, sliceOf(path.Dir(p)), path.Base(p)
	} else {
		cg.Path = p
	}
	return manager.New(cg)
}

// isSlice reports whether p is where systemd puts the slice of its last
// element: cgroupfs may name a directory "x.slice" anywhere.
func isSlice(p string) bool {
	base := path.Base(p)
	if p == "/" || !strings.HasSuffix(base, ".slice") {
		return false
	}
	exp, err := systemd.ExpandSlice(base)
	return err == nil && exp == p
}

// setMu serialises writing limits: the cgroupfs controllers of
// github.com/opencontainers/cgroups are package-level values that keep
// what they detect (blkio's weight file names) without a lock, made for
// runc's one call per process; huskd sets pods' limits from concurrent
// calls (a data race under TestParallelRunPodSandbox).
var setMu sync.Mutex

func set(m cgroups.Manager, r *cgroups.Resources) error {
	setMu.Lock()
	defer setMu.Unlock()
	return m.Set(r)
}

// Make creates the cgroup at p (a pod's, PodCgroup) with no process in
// it and the limits r.
func Make(p string, r *cgroups.Resources) error {
	m, err := managerWith(p, r)
	if err != nil {
		return err
	}
	if err := m.Apply(-1); err != nil {
		return fmt.Errorf("creating cgroup %s: %w", p, err)
	}
	if err := set(m, r); err != nil {
		return fmt.Errorf("setting the limits of cgroup %s: %w", p, err)
	}
	return nil
}

// Set writes the limits r to the cgroup at p, which exists; a zero field
// is left as it is. The kernel may refuse a value (a memory limit below
// what is charged: EBUSY) after others were written: the caller restores.
func Set(p string, r *cgroups.Resources) error {
	m, err := managerWith(p, r)
	if err != nil {
		return err
	}
	return set(m, r)
}

// Undo is what takes a cgroup whose limits were old back from next, which
// a failed Set may have written in part: old and, where next set a limit
// old left unset (zero: "leave as is"), the kernel's value for none. The
// cpusets, huge pages, pids and unified keys of next are not undone.
func Undo(old, next *cgroups.Resources) *cgroups.Resources {
	r := *old
	if r.Memory == 0 && next.Memory != 0 {
		r.Memory = -1
	}
	if r.MemorySwap == 0 && next.MemorySwap != 0 {
		r.MemorySwap = -1
	}
	if r.CpuQuota == 0 && next.CpuQuota != 0 {
		r.CpuQuota = -1
	}
	if r.CpuPeriod == 0 && next.CpuPeriod != 0 {
		r.CpuPeriod = defaultPeriod
	}
	if r.CpuShares == 0 && next.CpuShares != 0 {
		r.CpuShares = defaultShares
	}
	if r.CpuWeight == 0 && next.CpuWeight != 0 {
		r.CpuWeight = defaultWeight
	}
	return &r
}

// The kernel's values of a new cgroup.
const (
	defaultPeriod = 100000 // µs: cpu.cfs_period_us, cpu.max's period
	defaultShares = 1024   // v1 cpu.shares
	defaultWeight = 100    // v2 cpu.weight
)

// Destroy kills every process left in the cgroup at p and removes it from
// every hierarchy (a scope: stops its unit). It is how a pod or container
// is cleaned when its shim is gone or failed to; a cgroup that does not
// exist is fine. Processes get timeout to die after SIGKILL.
func Destroy(p string, timeout time.Duration) error {
	m, err := Manager(p)
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
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", p, err)
	}
	return nil
}

// RemoveEmpty removes the cgroup at p (cgroupfs form) from every hierarchy
// where it exists and is empty; the first other failure (a child cgroup:
// EBUSY) is returned after trying the rest. It never removes the root. A
// slice is left to systemd, which removes it when nothing is in it.
func RemoveEmpty(p string) error {
	if p == "/" || strings.HasSuffix(p, ".slice") {
		return nil
	}
	m, err := Manager(p)
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
