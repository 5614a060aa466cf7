// Package usage owns the low-level readers of what a container uses that
// both of husk's reporters need: the interface counters of a network
// namespace (/proc/<pid>/net/dev), the size and inodes of a writable
// layer, and the memory working set. huskd's CRI stats calls (package
// cri) and the cadvisor-style metrics (package container/metrics) each
// read them, with their own rules on top (which interfaces count, which
// counters go out).
//
// It is a leaf: it imports only the standard library, so that both can
// use it without pulling in package container and what that imports.
package usage

// WorkingSet is usage less the file pages the kernel would drop first, as
// cadvisor and containerd compute it: what kubelet evicts on. The two are
// read at different instants, hence the floor at zero.
func WorkingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}
