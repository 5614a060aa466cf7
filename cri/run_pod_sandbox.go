package cri

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/sandbox"
)

// validateRunPodSandbox checks everything about a RunPodSandbox request
// that can be checked without touching the node. Each error names the
// field at fault.
func validateRunPodSandbox(r *runtime.RunPodSandboxRequest) error {
	cfg := r.GetConfig()
	if cfg == nil {
		return errdefs.InvalidArgument("config", "missing")
	}
	if err := validateHandler(r.GetRuntimeHandler()); err != nil {
		return err
	}
	md := cfg.GetMetadata()
	if md == nil {
		return errdefs.InvalidArgument("config.metadata", "missing")
	}
	for field, v := range map[string]string{"name": md.GetName(), "namespace": md.GetNamespace(), "uid": md.GetUid()} {
		if v == "" {
			return errdefs.InvalidArgument("config.metadata."+field, "must not be empty")
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r == 0 || r == '/' || unicode.IsControl(r) }) {
			return errdefs.InvalidArgument("config.metadata."+field, "%q contains '/' or a control character", v)
		}
	}
	if md.GetAttempt() > 1<<30 {
		return errdefs.InvalidArgument("config.metadata.attempt", "%d is out of range", md.GetAttempt())
	}
	if h := cfg.GetHostname(); len(h) > 64 || strings.ContainsFunc(h, func(r rune) bool { return r == 0 || r == '/' || unicode.IsSpace(r) }) {
		return errdefs.InvalidArgument("config.hostname", "%q is not a valid hostname (at most 64 bytes, no '/' or spaces)", h)
	}
	if d := cfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return errdefs.InvalidArgument("config.log_directory", "%q is not an absolute path", d)
	}
	if err := validateDNS(cfg.GetDnsConfig()); err != nil {
		return err
	}
	for i, pm := range cfg.GetPortMappings() {
		if pm.GetContainerPort() < 0 || pm.GetContainerPort() > 65535 || pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
			return errdefs.InvalidArgument("config.port_mappings", "mapping %d: ports must be within 0-65535", i)
		}
		if ip := pm.GetHostIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return errdefs.InvalidArgument("config.port_mappings", "mapping %d: host_ip %q is not an IP address", i, ip)
			}
		}
	}
	linux := cfg.GetLinux()
	if p := linux.GetCgroupParent(); p != "" {
		if _, err := sandbox.CleanCgroupParent(p); err != nil {
			return errdefs.InvalidArgument("config.linux.cgroup_parent", "%q %v", p, err)
		}
	}
	sc := linux.GetSecurityContext()
	if err := validateNamespaceOptions(sc.GetNamespaceOptions()); err != nil {
		return err
	}
	if u := sc.GetRunAsUser(); u != nil && (u.GetValue() < 0 || u.GetValue() > 1<<32-2) {
		return errdefs.InvalidArgument("config.linux.security_context.run_as_user", "%d is not a valid uid", u.GetValue())
	}
	if g := sc.GetRunAsGroup(); g != nil && (g.GetValue() < 0 || g.GetValue() > 1<<32-2) {
		return errdefs.InvalidArgument("config.linux.security_context.run_as_group", "%d is not a valid gid", g.GetValue())
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-2 {
			return errdefs.InvalidArgument("config.linux.security_context.supplemental_groups", "%d is not a valid gid", g)
		}
	}
	return validateSysctls(linux.GetSysctls(), sc.GetNamespaceOptions())
}

func validateHandler(h string) error {
	if !slices.Contains(Handlers, h) {
		return errdefs.InvalidArgument("runtime_handler", "unknown runtime handler %q (husk serves %q)", h, Handlers)
	}
	return nil
}

func validateDNS(dns *runtime.DNSConfig) error {
	for _, s := range dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return errdefs.InvalidArgument("config.dns_config.servers", "%q is not an IP address", s)
		}
	}
	bad := func(s string) bool {
		return s == "" || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsRune(s, 0)
	}
	for _, s := range dns.GetSearches() {
		if bad(s) {
			return errdefs.InvalidArgument("config.dns_config.searches", "%q is empty or contains spaces", s)
		}
	}
	for _, o := range dns.GetOptions() {
		if bad(o) {
			return errdefs.InvalidArgument("config.dns_config.options", "%q is empty or contains spaces", o)
		}
	}
	return nil
}

// validateNamespaceOptions accepts the modes a pod may ask for: network and
// ipc POD or NODE; pid POD, CONTAINER, NODE or TARGET. User namespaces
// come with the containers work and are refused for now.
func validateNamespaceOptions(o *runtime.NamespaceOption) error {
	switch o.GetNetwork() {
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE:
	default:
		return errdefs.InvalidArgument("config.linux.security_context.namespace_options.network", "mode %v is not valid for a pod (POD or NODE)", o.GetNetwork())
	}
	switch o.GetIpc() {
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE:
	default:
		return errdefs.InvalidArgument("config.linux.security_context.namespace_options.ipc", "mode %v is not valid for a pod (POD or NODE)", o.GetIpc())
	}
	switch o.GetPid() {
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_CONTAINER, runtime.NamespaceMode_NODE, runtime.NamespaceMode_TARGET:
	default:
		return errdefs.InvalidArgument("config.linux.security_context.namespace_options.pid", "unknown mode %v", o.GetPid())
	}
	return validateUserns(o)
}

// validateUserns accepts the host's user namespace, or the pod's own with
// one UID and one GID mapping that maps container ID 0 (kubelet sends one
// range per pod). A pod in its own user namespace cannot share the host's
// network, PID or IPC namespaces: kubelet does not ask for that, and the
// host's namespaces would not be its own user namespace's.
func validateUserns(o *runtime.NamespaceOption) error {
	const field = "config.linux.security_context.namespace_options.userns_options"
	u := o.GetUsernsOptions()
	if u == nil {
		// Absent means the host's; the mode's zero value is POD.
		return nil
	}
	switch u.GetMode() {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return errdefs.InvalidArgument(field, "mappings are given for the host's user namespace")
		}
		return nil
	case runtime.NamespaceMode_POD:
	default:
		return errdefs.InvalidArgument(field+".mode", "mode %v is not valid for a pod's user namespace (POD or NODE)", u.GetMode())
	}
	for name, maps := range map[string][]*runtime.IDMapping{"uids": u.GetUids(), "gids": u.GetGids()} {
		if len(maps) != 1 {
			return errdefs.InvalidArgument(field+"."+name, "want exactly one mapping, got %d", len(maps))
		}
		m := maps[0]
		if m.GetContainerId() != 0 {
			return errdefs.InvalidArgument(field+"."+name, "container ID 0 must be mapped (the mapping starts at %d)", m.GetContainerId())
		}
		if m.GetLength() == 0 || uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32 {
			return errdefs.InvalidArgument(field+"."+name, "mapping of %d IDs from host ID %d is out of range", m.GetLength(), m.GetHostId())
		}
	}
	for kind, mode := range map[string]runtime.NamespaceMode{"network": o.GetNetwork(), "pid": o.GetPid(), "ipc": o.GetIpc()} {
		if mode == runtime.NamespaceMode_NODE {
			return errdefs.InvalidArgument(field, "a pod in its own user namespace cannot use the host's %s namespace", kind)
		}
	}
	return nil
}

// ipcSysctls are the non-net sysctls the kernel scopes to an IPC namespace.
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// validateSysctls accepts only namespaced sysctls whose namespace the pod
// owns: net.* needs the pod's own network, the IPC ones its own IPC, and
// kernel.hostname/domainname its own UTS. Anything else would change the
// node.
func validateSysctls(sysctls map[string]string, o *runtime.NamespaceOption) error {
	const field = "config.linux.sysctls"
	for name, value := range sysctls {
		if strings.ContainsAny(value, "\n\x00") {
			return errdefs.InvalidArgument(field, "value of %q contains a newline or NUL", name)
		}
		// kubelet allows '/' as the separator; then '.' is part of a name.
		dotted := name
		if strings.Contains(name, "/") {
			dotted = strings.ReplaceAll(name, "/", ".")
		}
		sep := "."
		if strings.Contains(name, "/") {
			sep = "/"
		}
		for _, el := range strings.Split(name, sep) {
			if el == "" || el == ".." || el == "." || strings.ContainsAny(el, "\x00 ") {
				return errdefs.InvalidArgument(field, "%q is not a sysctl name", name)
			}
		}
		switch {
		case strings.HasPrefix(dotted, "net."):
			if o.GetNetwork() == runtime.NamespaceMode_NODE {
				return errdefs.InvalidArgument(field, "%q would change the node: the pod uses the host's network", name)
			}
		case slices.Contains(ipcSysctls, dotted) || strings.HasPrefix(dotted, "fs.mqueue."):
			if o.GetIpc() == runtime.NamespaceMode_NODE {
				return errdefs.InvalidArgument(field, "%q would change the node: the pod uses the host's IPC namespace", name)
			}
		case dotted == "kernel.hostname" || dotted == "kernel.domainname":
			if o.GetNetwork() == runtime.NamespaceMode_NODE {
				return errdefs.InvalidArgument(field, "%q would change the node: a host-network pod uses the host's UTS namespace", name)
			}
		default:
			return errdefs.InvalidArgument(field, "%q is not a namespaced sysctl", name)
		}
	}
	return nil
}

// RunPodSandbox creates and starts a pod-level sandbox. Runtimes must ensure
// the sandbox is in the ready state on success.
//
// A request whose metadata matches an existing sandbox answers
// AlreadyExists, except kubelet's retry of a call still in progress, which
// gets that call's sandbox once it is ready.
func (s *Server) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	if err := validateRunPodSandbox(r); err != nil {
		return nil, err
	}
	id, err := s.sandboxes.Run(ctx, r.GetConfig(), r.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}
