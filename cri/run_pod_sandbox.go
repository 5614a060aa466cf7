package cri

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/errdefs"
)

// validateRunPodSandbox checks everything about a RunPodSandbox request
// that can be checked without touching the node, one concern per check.
// Each error names the field at fault. driver is the cgroup driver new
// pods are made with: it decides the form of linux.cgroup_parent; handlers
// are the runtime handlers served.
func validateRunPodSandbox(r *runtime.RunPodSandboxRequest, driver cgroup.Driver, handlers []string) error {
	cfg := r.GetConfig()
	if cfg == nil {
		return errdefs.InvalidArgument("config", "missing")
	}
	if err := checkConfigSize("config", cfg); err != nil {
		return err
	}
	if err := validateHandler(r.GetRuntimeHandler(), handlers); err != nil {
		return err
	}
	for _, check := range []func(*runtime.PodSandboxConfig) error{
		validatePodMetadata, validateHostname, validateLogDirectory, validatePodMaps, validatePodDNS,
		validatePortMappings, func(c *runtime.PodSandboxConfig) error { return validatePodLinux(c, driver) },
	} {
		if err := check(cfg); err != nil {
			return err
		}
	}
	// Last, the catch-all: fields the checks above do not know.
	return checkStrings("config", cfg.ProtoReflect())
}

func validatePodMetadata(cfg *runtime.PodSandboxConfig) error {
	md := cfg.GetMetadata()
	if md == nil {
		return errdefs.InvalidArgument("config.metadata", "missing")
	}
	for _, f := range []struct{ field, v string }{{"name", md.GetName()}, {"namespace", md.GetNamespace()}, {"uid", md.GetUid()}} {
		if err := checkName("config.metadata."+f.field, f.v); err != nil {
			return err
		}
	}
	if md.GetAttempt() > 1<<30 {
		return errdefs.InvalidArgument("config.metadata.attempt", "%d is out of range", md.GetAttempt())
	}
	return nil
}

// checkName checks a pod's or container's name, namespace or UID: they
// make the name husk reserves and the records it writes.
func checkName(field, v string) error {
	if v == "" {
		return errdefs.InvalidArgument(field, "must not be empty")
	}
	if err := checkLength(field, v, maxName, "the longest Kubernetes name, a DNS-1123 subdomain"); err != nil {
		return err
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r == 0 || r == '/' || unicode.IsControl(r) }) {
		return errdefs.InvalidArgument(field, "%q contains '/' or a control character", v)
	}
	return nil
}

func validateHostname(cfg *runtime.PodSandboxConfig) error {
	if h := cfg.GetHostname(); len(h) > 64 || strings.ContainsFunc(h, func(r rune) bool { return r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errdefs.InvalidArgument("config.hostname", "%q is not a valid hostname (at most 64 bytes, HOST_NAME_MAX; no '/', spaces or control characters)", h)
	}
	return nil
}

// validateLogDirectory: containers' logs go to log_directory joined with
// their log_path; ".." would take them elsewhere.
func validateLogDirectory(cfg *runtime.PodSandboxConfig) error {
	const field = "config.log_directory"
	d := cfg.GetLogDirectory()
	switch {
	case d == "":
		return nil
	case !filepath.IsAbs(d):
		return errdefs.InvalidArgument(field, "%q is not an absolute path", d)
	case hasDotDot(d):
		return errdefs.InvalidArgument(field, "%q contains \"..\"", d)
	case strings.ContainsRune(d, 0):
		return errdefs.InvalidArgument(field, "%q contains a NUL byte", d)
	}
	return checkLength(field, d, maxString, stringLimit.what)
}

func validatePodMaps(cfg *runtime.PodSandboxConfig) error {
	if err := checkLabels("config.labels", cfg.GetLabels()); err != nil {
		return err
	}
	return checkAnnotations("config.annotations", cfg.GetAnnotations())
}

func validatePodDNS(cfg *runtime.PodSandboxConfig) error { return validateDNS(cfg.GetDnsConfig()) }

func validatePortMappings(cfg *runtime.PodSandboxConfig) error {
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
	return nil
}

func validatePodLinux(cfg *runtime.PodSandboxConfig, driver cgroup.Driver) error {
	linux := cfg.GetLinux()
	if p := linux.GetCgroupParent(); p != "" {
		if _, err := driver.Parent(p); err != nil {
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
	if err := checkSupplementalGroups("config.linux.security_context.supplemental_groups", sc.GetSupplementalGroups()); err != nil {
		return err
	}
	return validateSysctls(linux.GetSysctls(), sc.GetNamespaceOptions())
}

// checkSupplementalGroups: setgroups(2) takes at most NGROUPS_MAX.
func checkSupplementalGroups(field string, groups []int64) error {
	if len(groups) > ngroupsMax {
		return errdefs.InvalidArgument(field, "%d groups; at most %d (NGROUPS_MAX) are accepted", len(groups), ngroupsMax)
	}
	for _, g := range groups {
		if g < 0 || g > 1<<32-2 {
			return errdefs.InvalidArgument(field, "%d is not a valid gid", g)
		}
	}
	return nil
}

// ngroupsMax is the kernel's NGROUPS_MAX.
const ngroupsMax = 65536

func validateHandler(h string, handlers []string) error {
	if !slices.Contains(handlers, h) {
		return errdefs.InvalidArgument("runtime_handler", "unknown runtime handler %q (husk serves %q)", h, handlers)
	}
	return nil
}

// Bounds of a pod's DNS configuration: twice Kubernetes' own
// (MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars in
// pkg/apis/core/validation; kubelet trims to them); options take the
// searches' bounds, Kubernetes has none.
const (
	maxDNSServers     = 2 * 3
	maxDNSSearches    = 2 * 32
	maxDNSSearchChars = 2 * 2048
	maxDNSName        = 253 // a domain name
)

// validateDNS checks what resolvConf writes into the pod's resolv.conf,
// one value a word: nothing may end a line or start another.
func validateDNS(dns *runtime.DNSConfig) error {
	if n := len(dns.GetServers()); n > maxDNSServers {
		return errdefs.InvalidArgument("config.dns_config.servers", "%d servers; at most %d are accepted (resolvers use 3)", n, maxDNSServers)
	}
	for i, s := range dns.GetServers() {
		if err := checkDNSServer(fmt.Sprintf("config.dns_config.servers[%d]", i), s); err != nil {
			return err
		}
	}
	if err := checkDNSWords("config.dns_config.searches", dns.GetSearches()); err != nil {
		return err
	}
	return checkDNSWords("config.dns_config.options", dns.GetOptions())
}

// checkDNSServer accepts an IP address; an IPv6 link-local one may carry
// a zone, which must then be an interface name or index as the kernel
// allows them (dev_valid_name: < IFNAMSIZ bytes, no '/', ':' or space).
func checkDNSServer(field, s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return errdefs.InvalidArgument(field, "%q is not an IP address", s)
	}
	if z := a.Zone(); z != "" && !validIfname(z) {
		return errdefs.InvalidArgument(field, "%q: zone %q is not an interface name", s, z)
	}
	return nil
}

func validIfname(s string) bool {
	const ifnamsiz = 16
	return s != "" && len(s) < ifnamsiz && s != "." && s != ".." &&
		!strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) })
}

// checkDNSWords checks searches or options: words of one line.
func checkDNSWords(field string, words []string) error {
	if len(words) > maxDNSSearches {
		return errdefs.InvalidArgument(field, "%d entries; at most %d are accepted", len(words), maxDNSSearches)
	}
	total := 0
	for i, w := range words {
		f := fmt.Sprintf("%s[%d]", field, i)
		if w == "" || strings.ContainsFunc(w, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return errdefs.InvalidArgument(f, "%q is empty or contains spaces or control characters", w)
		}
		if err := checkLength(f, w, maxDNSName, "the longest domain name"); err != nil {
			return err
		}
		total += len(w) + 1
	}
	if total > maxDNSSearchChars {
		return errdefs.InvalidArgument(field, "%d characters; at most %d are accepted", total, maxDNSSearchChars)
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
// PID or IPC namespaces: kubelet does not ask for that, and the host's
// namespaces would not be its own user namespace's. The host's network it
// may share (KEP-5607, advertised as user_namespaces_host_network): its
// root then holds no capability over the network, and its containers get
// the host's /sys bound (container.defaultMounts).
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
	for kind, mode := range map[string]runtime.NamespaceMode{"pid": o.GetPid(), "ipc": o.GetIpc()} {
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

// sysctlMaxLength is Kubernetes' SysctlMaxLength.
const sysctlMaxLength = 253

// validateSysctls accepts only namespaced sysctls whose namespace the pod
// owns: net.* needs the pod's own network, the IPC ones its own IPC, and
// kernel.hostname/domainname its own UTS. Anything else would change the
// node.
func validateSysctls(sysctls map[string]string, o *runtime.NamespaceOption) error {
	const field = "config.linux.sysctls"
	for name, value := range sysctls {
		if err := checkLength(field, name, sysctlMaxLength, "SysctlMaxLength, the longest sysctl name"); err != nil {
			return err
		}
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
	if err := validateRunPodSandbox(r, s.sandboxes.CgroupDriver(), s.opts.Handlers); err != nil {
		return nil, err
	}
	if l := r.GetConfig().GetLinux(); l != nil {
		if err := validatePodResources("config.linux.", l.GetResources(), l.GetOverhead(), s.opts.Node); err != nil {
			return nil, err
		}
	}
	id, err := s.sandboxes.Run(ctx, r.GetConfig(), r.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}
