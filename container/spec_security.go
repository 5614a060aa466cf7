package container

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/huskrt/husk/container/apparmor"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// allCapabilities are the Linux capabilities up to CAP_CHECKPOINT_RESTORE
// (5.9), in kernel order. A fixed list rather than the running kernel's:
// the spec stays a pure function, and libcontainer skips, with a warning,
// those the kernel does not know.
var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// defaultCapabilities is containerd's (and Docker's) default set, which
// workloads written for either expect.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

const capAll = "ALL"

// capabilities applies the security context to the default set in
// containerd's order: add ALL, drop ALL, then single adds, then single
// drops, so that "add ALL, drop CHOWN" means all but CHOWN and "drop ALL,
// add NET_ADMIN" means NET_ADMIN alone. Privileged means every capability.
// Ambient capabilities join every set: the kernel raises an ambient
// capability only if it is permitted and inheritable.
//
// "ALL" and privileged mean every capability the node's runtime holds (its
// bounding set, node.Capabilities): asking the kernel for one it lacks
// (root here has no CAP_SYS_RESOURCE) fails the container's start. A
// default it lacks is left out; an explicit request for one is refused.
func capabilities(sc *runtime.LinuxContainerSecurityContext, node NodeInfo) (*specs.LinuxCapabilities, error) {
	available := allCapabilities
	if len(node.Capabilities) > 0 {
		available = node.Capabilities
	}
	c := sc.GetCapabilities()
	field := fieldSC + ".capabilities"
	add, err := capNames(c.GetAddCapabilities(), field+".add_capabilities")
	if err != nil {
		return nil, err
	}
	drop, err := capNames(c.GetDropCapabilities(), field+".drop_capabilities")
	if err != nil {
		return nil, err
	}
	ambient, err := capNames(c.GetAddAmbientCapabilities(), field+".add_ambient_capabilities")
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool)
	for _, name := range defaultCapabilities {
		if slices.Contains(available, name) {
			set[name] = true
		}
	}
	if slices.Contains(add, capAll) {
		for _, name := range available {
			set[name] = true
		}
	}
	if slices.Contains(drop, capAll) {
		clear(set)
	}
	for _, name := range add {
		if name == capAll {
			continue
		}
		if !slices.Contains(available, name) {
			return nil, errdefs.FailedPrecondition("capability %s is not available to the runtime on this node", name)
		}
		set[name] = true
	}
	for _, name := range drop {
		delete(set, name)
	}
	if sc.GetPrivileged() {
		for _, name := range available {
			set[name] = true
		}
	}
	amb := make(map[string]bool)
	for _, name := range expandAll(ambient, available) {
		if !slices.Contains(available, name) {
			return nil, errdefs.FailedPrecondition("capability %s is not available to the runtime on this node", name)
		}
		set[name] = true
		amb[name] = true
	}
	caps := inKernelOrder(set)
	ambientCaps := inKernelOrder(amb)
	return &specs.LinuxCapabilities{
		Bounding:    caps,
		Effective:   slices.Clone(caps),
		Permitted:   slices.Clone(caps),
		Inheritable: ambientCaps,
		Ambient:     slices.Clone(ambientCaps),
	}, nil
}

// capNames canonicalizes CRI capability names: Kubernetes sends them
// without "CAP_", other clients with it, in any case.
func capNames(names []string, field string) ([]string, error) {
	out := make([]string, 0, len(names))
	for i, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c != capAll && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if c != capAll && !slices.Contains(allCapabilities, c) {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("%s[%d]", field, i), "unknown capability %q", n)
		}
		out = append(out, c)
	}
	return out, nil
}

func expandAll(names, available []string) []string {
	if slices.Contains(names, capAll) {
		return available
	}
	return names
}

// inKernelOrder lists set in a stable order, so equal inputs give equal specs.
func inKernelOrder(set map[string]bool) []string {
	var out []string
	for _, name := range allCapabilities {
		if set[name] {
			out = append(out, name)
		}
	}
	return out
}

// Deprecated profile strings (seccomp_profile_path, apparmor_profile).
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// securityProfile returns the structured profile if set, else the one the
// deprecated string field names (nil for ""), checked for consistency.
func securityProfile(p *runtime.SecurityProfile, field, deprecated, deprecatedField string) (*runtime.SecurityProfile, string, error) {
	if p == nil {
		p, err := parseDeprecatedProfile(deprecated, deprecatedField)
		return p, deprecatedField, err
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault, runtime.SecurityProfile_Unconfined:
		if p.GetLocalhostRef() != "" {
			return nil, "", errdefs.InvalidArgument(field+".localhost_ref", "is set with profile_type %s", p.GetProfileType())
		}
	case runtime.SecurityProfile_Localhost:
		if p.GetLocalhostRef() == "" {
			return nil, "", errdefs.InvalidArgument(field+".localhost_ref", "must be set with profile_type Localhost")
		}
	default:
		return nil, "", errdefs.InvalidArgument(field+".profile_type", "unknown type %d", p.GetProfileType())
	}
	return p, field + ".localhost_ref", nil
}

func parseDeprecatedProfile(s, field string) (*runtime.SecurityProfile, error) {
	switch {
	case s == "":
		return nil, nil
	case s == profileRuntimeDefault || s == profileDockerDefault:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case s == profileUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(s, profileLocalhost) && len(s) > len(profileLocalhost):
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(s, profileLocalhost)}, nil
	}
	return nil, errdefs.InvalidArgument(field, "unknown profile %q (want %q, %q or %q<name>)", s, profileRuntimeDefault, profileUnconfined, profileLocalhost)
}

// seccompProfile returns the filter for s, whose capabilities are final.
// No seccomp field at all means unconfined, as critest expects; privileged
// containers are never filtered.
func seccompProfile(in SpecInput, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	//lint:ignore SA1019 kubelets before 1.19's fields are still honoured, after the new one
	p, field, err := securityProfile(sc.GetSeccomp(), fieldSC+".seccomp", sc.GetSeccompProfilePath(), fieldSC+".seccomp_profile_path")
	if err != nil || p == nil || sc.GetPrivileged() {
		return nil, err
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		f, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		return f, nil
	case runtime.SecurityProfile_Localhost:
		return localhostSeccomp(in, s, p.GetLocalhostRef(), field)
	}
	return nil, nil
}

// localhostSeccomp loads a profile from the node; relative references are
// under the configured root (kubelet sends absolute paths, people using
// crictl may not). A reference with ".." is refused: kubelet joins the
// pod's profile name to its root and cleans it, so ".." only comes from
// a request meant to climb out of the root.
func localhostSeccomp(in SpecInput, s *specs.Spec, ref, field string) (*specs.LinuxSeccomp, error) {
	ref = strings.TrimPrefix(ref, profileLocalhost)
	if slices.Contains(strings.Split(ref, "/"), "..") || strings.ContainsRune(ref, 0) {
		return nil, errdefs.InvalidArgument(field, "seccomp profile %q contains \"..\" or a NUL byte", ref)
	}
	file := ref
	if !path.IsAbs(file) {
		if in.Node.SeccompProfileRoot == "" {
			return nil, errdefs.InvalidArgument(field, "seccomp profile %q is relative and no seccomp profile root is configured", ref)
		}
		file = filepath.Join(in.Node.SeccompProfileRoot, file)
	}
	read := in.ReadFile
	if read == nil {
		read = readSeccompProfile
	}
	body, err := read(file)
	if err != nil {
		return nil, errdefs.InvalidArgument(field, "seccomp profile %q: %v", ref, err)
	}
	// Not the decoder's error: it quotes the file's bytes, and a pod's
	// events are no place for another file's content.
	if len(body) > 0 && !json.Valid(body) {
		return nil, errdefs.InvalidArgument(field, "seccomp profile %q is not JSON", ref)
	}
	f, err := seccomp.LoadProfile(string(body), s)
	if err != nil {
		return nil, errdefs.InvalidArgument(field, "seccomp profile %q: %v", ref, err)
	}
	return f, nil
}

// apparmorProfile returns the profile name for the process. On a node
// with AppArmor, an unset profile and RuntimeDefault (which api.proto says
// are the same) mean husk's default profile, which huskd loads, and a
// privileged container is not confined (api.proto: "AppArmor confinement
// is not applied"), not even by a Localhost profile. Without AppArmor in
// the kernel nothing can be applied: RuntimeDefault runs unconfined by
// AppArmor (seccomp and capabilities still apply) and a Localhost profile,
// which the admin must have loaded, is refused.
func apparmorProfile(sc *runtime.LinuxContainerSecurityContext, node NodeInfo) (string, error) {
	//lint:ignore SA1019 kubelets before 1.30's field is still honoured, after the new one
	p, field, err := securityProfile(sc.GetApparmor(), fieldSC+".apparmor", sc.GetApparmorProfile(), fieldSC+".apparmor_profile")
	if err != nil {
		return "", err
	}
	typ := runtime.SecurityProfile_RuntimeDefault
	if p != nil {
		typ = p.GetProfileType()
	}
	switch {
	case typ == runtime.SecurityProfile_Localhost && !node.AppArmor:
		return "", errdefs.FailedPrecondition("%s: AppArmor is not enabled on this node", field)
	case !node.AppArmor || sc.GetPrivileged() || typ == runtime.SecurityProfile_Unconfined:
		return "", nil
	case typ == runtime.SecurityProfile_Localhost:
		return strings.TrimPrefix(p.GetLocalhostRef(), profileLocalhost), nil
	}
	return apparmor.DefaultProfile, nil
}

// linuxNamespaces joins the pod's pinned namespaces (a kind the pod does
// not pin is the host's), and picks the pid namespace by the container's
// mode.
func linuxNamespaces(in SpecInput) ([]specs.LinuxNamespace, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	if err := checkUserns(sc.GetNamespaceOptions().GetUsernsOptions(), in.Sandbox); err != nil {
		return nil, err
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, k := range []struct {
		kind string
		typ  specs.LinuxNamespaceType
	}{{"user", specs.UserNamespace}, {"net", specs.NetworkNamespace}, {"ipc", specs.IPCNamespace}, {"uts", specs.UTSNamespace}} {
		if p := in.Sandbox.Namespaces[k.kind]; p != "" {
			ns = append(ns, specs.LinuxNamespace{Type: k.typ, Path: p})
		}
	}
	pid, err := pidNamespace(in)
	if err != nil {
		return nil, err
	}
	if pid != nil {
		ns = append(ns, *pid)
	}
	// A cgroup namespace hides the host's hierarchy; privileged containers
	// keep seeing it, as containerd does (KEP-2254), since node agents run
	// privileged to manage it.
	if in.Node.CgroupV2 && !sc.GetPrivileged() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns, nil
}

func pidNamespace(in SpecInput) (*specs.LinuxNamespace, error) {
	opts := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	field := fieldSC + ".namespace_options"
	switch mode := opts.GetPid(); mode {
	case runtime.NamespaceMode_POD:
		if in.Sandbox.PausePID <= 0 {
			return nil, errdefs.FailedPrecondition("pod sandbox %s has no running pause process whose PID namespace to join", in.Sandbox.ID)
		}
		return &specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", in.Sandbox.PausePID)}, nil
	case runtime.NamespaceMode_CONTAINER:
		return &specs.LinuxNamespace{Type: specs.PIDNamespace}, nil
	case runtime.NamespaceMode_NODE:
		return nil, nil
	case runtime.NamespaceMode_TARGET:
		if opts.GetTargetId() == "" {
			return nil, errdefs.InvalidArgument(field+".target_id", "must be set with pid mode TARGET")
		}
		if in.TargetPID <= 0 {
			return nil, errdefs.InvalidArgument(field+".target_id", "container %q has no running process whose PID namespace to join", opts.GetTargetId())
		}
		return &specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", in.TargetPID)}, nil
	default:
		return nil, errdefs.InvalidArgument(field+".pid", "unknown mode %d", mode)
	}
}

// checkUserns checks a container's user namespace against its pod's: a
// container joins the pod's own user namespace (mode POD) or shares the
// host's (NODE, or unset) when the pod does; it cannot differ from its pod.
func checkUserns(u *runtime.UserNamespace, sb SandboxInfo) error {
	field := fieldSC + ".namespace_options.userns_options.mode"
	podUserns := sb.Namespaces["user"] != ""
	switch {
	case u == nil || u.GetMode() == runtime.NamespaceMode_NODE:
		if podUserns {
			return errdefs.InvalidArgument(field, "the pod has its own user namespace; a container cannot use the host's")
		}
		return nil
	case u.GetMode() == runtime.NamespaceMode_POD:
		if !podUserns {
			return errdefs.InvalidArgument(field, "the pod has no user namespace of its own to join")
		}
		return nil
	}
	return errdefs.InvalidArgument(field, "mode %s is not valid for a user namespace", u.GetMode())
}

// CapabilitiesFromMask names the capabilities in a kernel capability mask
// (as /proc/<pid>/status shows CapBnd).
func CapabilitiesFromMask(mask uint64) []string {
	var out []string
	for i, name := range allCapabilities {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}
