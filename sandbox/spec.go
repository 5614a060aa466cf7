package sandbox

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/cgroup"
)

// PauseBinary is where the pause program sits in the pause rootfs.
const PauseBinary = "/pause"

// The user the pause runs as when the pod asks for none: the nobody-like
// IDs of Kubernetes' pause image (USER 65535:65535).
const (
	pauseUID = 65535
	pauseGID = 65535
)

// pauseOOMScoreAdj is what kubelet gives a pod's infrastructure container:
// the last process on the node to be OOM-killed.
const pauseOOMScoreAdj = -998

// nsPlan is which namespaces a pod gets of its own and who creates them.
type nsPlan struct {
	// Own are the kinds (net, uts, ipc) the pod has of its own.
	Own []string
	// PinFirst says husk creates and pins them before the pause starts;
	// otherwise the pause creates them, inside its own user namespace, and
	// husk pins them afterwards (a network namespace must be owned by the
	// user namespace of the processes that configure it).
	PinFirst bool
	NewPID   bool
	// UserNS: the pod has its own user namespace (userns_options POD).
	UserNS bool
}

// podNamespaces decides which namespaces a pod gets of its own, from the
// pod's NamespaceOption:
//
//   - network POD: pinned by husk; NODE: the host's.
//
//   - ipc POD: pinned; NODE: the host's.
//
//   - uts: pinned, except for a host-network pod, which kubelet expects to
//     see the node's hostname.
//
//   - pid NODE: the host's; POD, CONTAINER and TARGET: the pause starts a
//     new one (with POD the app containers join it; otherwise each gets its
//     own or its target's).
//
//   - user: the host's, unless userns_options asks for the pod's own (POD).
func podNamespaces(o *runtime.NamespaceOption) nsPlan {
	var p nsPlan
	if o.GetNetwork() != runtime.NamespaceMode_NODE {
		p.Own = append(p.Own, NSNet, NSUTS)
	}
	if o.GetIpc() != runtime.NamespaceMode_NODE {
		p.Own = append(p.Own, NSIPC)
	}
	p.NewPID = o.GetPid() != runtime.NamespaceMode_NODE
	p.UserNS = UserNS(o)
	p.PinFirst = !p.UserNS
	return p
}

// UserNS says whether the options ask for the pod's own user namespace.
// An absent userns_options is the host's (the mode's zero value is POD).
func UserNS(o *runtime.NamespaceOption) bool {
	u := o.GetUsernsOptions()
	return u != nil && u.GetMode() == runtime.NamespaceMode_POD
}

// mapped says whether id is inside one of the mappings.
func mapped(ms []*runtime.IDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.GetContainerId() && id-m.GetContainerId() < m.GetLength() {
			return true
		}
	}
	return false
}

// idMappings converts CRI ID mappings to the OCI spec's.
func idMappings(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

// HostNetwork says whether the pod uses the node's network namespace.
func HostNetwork(cfg *runtime.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
}

type pauseSpecInput struct {
	Config     *runtime.PodSandboxConfig
	Rootfs     string
	CgroupPath string
	// Pinned maps namespace kinds to the paths the pause joins.
	Pinned map[string]string
	NewPID bool
	// UserNS: the pause creates the pod's user namespace and, inside it,
	// the Own kinds (Pinned is then empty).
	UserNS bool
	Own    []string
	// OOMScoreAdjFloor is the lowest oom_score_adj this process may ask for:
	// its own. Without CAP_SYS_RESOURCE a lower value cannot be written, and
	// libcontainer then fails with "can't get final child's PID from pipe".
	OOMScoreAdjFloor int
}

// pauseSpec is the OCI runtime spec of a pod's pause: a read-only rootfs
// holding one static binary, no capabilities, no new privileges, and the
// pod's namespaces, sysctls and cgroup.
func pauseSpec(in pauseSpecInput) *specs.Spec {
	sc := in.Config.GetLinux().GetSecurityContext()
	uid, gid := uint32(pauseUID), uint32(pauseGID)
	if u := sc.GetRunAsUser(); u != nil {
		uid = uint32(u.GetValue())
	}
	if g := sc.GetRunAsGroup(); g != nil {
		gid = uint32(g.GetValue())
	}
	if in.UserNS && sc.GetRunAsUser() == nil {
		// The nobody-like IDs may fall outside a short mapping; the pod's
		// root is as unprivileged on the host as any mapped ID.
		u := sc.GetNamespaceOptions().GetUsernsOptions()
		if !mapped(u.GetUids(), uid) || !mapped(u.GetGids(), gid) {
			uid, gid = 0, 0
		}
	}
	var groups []uint32
	for _, g := range sc.GetSupplementalGroups() {
		groups = append(groups, uint32(g))
	}

	oom := max(pauseOOMScoreAdj, in.OOMScoreAdjFloor)

	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if in.UserNS {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	}
	if in.NewPID {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	hostname := ""
	for _, k := range []struct {
		kind string
		t    specs.LinuxNamespaceType
	}{{NSNet, specs.NetworkNamespace}, {NSIPC, specs.IPCNamespace}, {NSUTS, specs.UTSNamespace}} {
		if p, ok := in.Pinned[k.kind]; ok {
			ns = append(ns, specs.LinuxNamespace{Type: k.t, Path: p})
		} else if in.UserNS && slices.Contains(in.Own, k.kind) {
			ns = append(ns, specs.LinuxNamespace{Type: k.t})
			if k.kind == NSUTS {
				// A UTS namespace husk did not create gets its name here.
				hostname = in.Config.GetHostname()
			}
		}
	}

	var sysctl map[string]string
	if s := in.Config.GetLinux().GetSysctls(); len(s) > 0 {
		sysctl = make(map[string]string, len(s))
		for k, v := range s {
			sysctl[k] = v
		}
	}

	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: true},
		Process: &specs.Process{
			Args:            []string{PauseBinary},
			Env:             []string{"PATH=/"},
			Cwd:             "/",
			User:            specs.User{UID: uid, GID: gid, AdditionalGids: groups},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			OOMScoreAdj:     &oom,
		},
		Mounts: []specs.Mount{
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces:  ns,
			CgroupsPath: cgroup.SpecPath(in.CgroupPath),
			Sysctl:      sysctl,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
		},
	}
	// The pause reads nothing under /proc, but libcontainer's init does
	// when it writes the pod's sysctls and when it sets up a user
	// namespace (it refuses to go on without a procfs there). Only such
	// pods get it, masked as containers have it: for the others the
	// pause's start is a proc mount and sixteen masking mounts shorter.
	if len(sysctl) > 0 || in.UserNS {
		spec.Mounts = append([]specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}}}, spec.Mounts...)
		spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = defaultMaskedPaths, defaultReadonlyPaths
	}
	if in.UserNS {
		u := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
		spec.Linux.UIDMappings, spec.Linux.GIDMappings = idMappings(u.GetUids()), idMappings(u.GetGids())
	}
	return spec
}

// The paths under /proc and /sys that containers must not read or write,
// as containerd and runc mask them by default.
var defaultMaskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

var defaultReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}
