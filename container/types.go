// Package container owns app containers: the CRI ContainerConfig turned
// into an OCI runtime spec (a pure function), their lifecycle through the
// pod's shim, their records, logs and stats.
package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageConfig is what an image says about running it (the "config" of the
// OCI image config).
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	StopSignal string
}

// SandboxInfo is what a container takes from its pod.
type SandboxInfo struct {
	ID string
	// Namespaces maps "net", "ipc", "uts" (and "user") to the pod's pinned
	// namespace files; a kind that is missing is the host's.
	Namespaces map[string]string
	// UIDMappings and GIDMappings are the pod's user namespace mappings,
	// when it has its own ("user" in Namespaces).
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// PausePID is the pause's pid: with PID namespace mode POD, containers
	// join /proc/<PausePID>/ns/pid.
	PausePID int
	// Options are the pod's namespace options (network, pid, ipc).
	Options *runtime.NamespaceOption
	// Cgroup is the container's cgroup (cgroupfs form), beside the pod's
	// pause (sandbox.ContainerCgroup).
	Cgroup string
	// Files the container gets bind-mounted unless its config mounts
	// something at the same path.
	HostnamePath, HostsPath, ResolvPath string
	// ShmPath is the pod's /dev/shm; "" means the host's (host IPC).
	ShmPath string
}

// NodeInfo is what the spec depends on about the node.
type NodeInfo struct {
	// OOMScoreAdjFloor is the lowest oom_score_adj husk may ask for: its
	// own (root here lacks CAP_SYS_RESOURCE).
	OOMScoreAdjFloor int
	// CgroupV2 says whether the node runs the unified hierarchy.
	CgroupV2 bool
	// HugetlbController says whether the hugetlb controller is mounted.
	HugetlbController bool
	// SeccompProfileRoot is where relative Localhost seccomp profiles are
	// looked up (kubelet sends absolute paths; crictl users may not).
	SeccompProfileRoot string
	// AppArmor says whether the kernel has AppArmor enabled.
	AppArmor bool
	// Capabilities are the capabilities the runtime holds (its bounding
	// set, "CAP_CHOWN" form): what "ALL" and privileged can give. Empty
	// means every capability the kernel knows.
	Capabilities []string
}

// User is the identity a container's process runs as, as
// ContainerStatus.user reports it.
type User struct {
	UID, GID           int64
	SupplementalGroups []int64
}

// UserDB answers user and group lookups from a container image's
// /etc/passwd and /etc/group.
type UserDB interface {
	// LookupUser finds a user by name or, if name is numeric, by uid.
	// ok is false when there is no such entry.
	LookupUser(nameOrUID string) (uid, gid int64, name string, ok bool)
	// LookupGroup finds a group by name or gid.
	LookupGroup(nameOrGID string) (gid int64, ok bool)
	// GroupsOf returns the gids of the groups that list user (by name)
	// as a member.
	GroupsOf(user string) []int64
}
