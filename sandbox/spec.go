package sandbox

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// podNamespaces decides which namespaces a pod gets of its own, from the
// pod's NamespaceOption:
//
//   - network POD: pinned by husk; NODE: the host's.
//   - ipc POD: pinned; NODE: the host's.
//   - uts: pinned, except for a host-network pod, which kubelet expects to
//     see the node's hostname.
//   - pid NODE: the host's; POD, CONTAINER and TARGET: the pause starts a
//     new one (with POD the app containers join it; otherwise each gets its
//     own or its target's).
//
// pin lists the kinds husk creates and pins before the pause starts.
func podNamespaces(o *runtime.NamespaceOption) (pin []string, newPID bool) {
	if o.GetNetwork() != runtime.NamespaceMode_NODE {
		pin = append(pin, NSNet, NSUTS)
	}
	if o.GetIpc() != runtime.NamespaceMode_NODE {
		pin = append(pin, NSIPC)
	}
	return pin, o.GetPid() != runtime.NamespaceMode_NODE
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
	var groups []uint32
	for _, g := range sc.GetSupplementalGroups() {
		groups = append(groups, uint32(g))
	}

	oom := max(pauseOOMScoreAdj, in.OOMScoreAdjFloor)

	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if in.NewPID {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	for _, k := range []struct {
		kind string
		t    specs.LinuxNamespaceType
	}{{NSNet, specs.NetworkNamespace}, {NSIPC, specs.IPCNamespace}, {NSUTS, specs.UTSNamespace}} {
		if p, ok := in.Pinned[k.kind]; ok {
			ns = append(ns, specs.LinuxNamespace{Type: k.t, Path: p})
		}
	}

	var sysctl map[string]string
	if s := in.Config.GetLinux().GetSysctls(); len(s) > 0 {
		sysctl = make(map[string]string, len(s))
		for k, v := range s {
			sysctl[k] = v
		}
	}

	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.Rootfs, Readonly: true},
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
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces:  ns,
			CgroupsPath: in.CgroupPath,
			Sysctl:      sysctl,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths:   defaultMaskedPaths,
			ReadonlyPaths: defaultReadonlyPaths,
		},
	}
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
