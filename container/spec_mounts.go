package container

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/huskrt/husk/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container paths of the files every container gets from its pod.
const (
	devShm         = "/dev/shm"
	etcHostname    = "/etc/hostname"
	etcHosts       = "/etc/hosts"
	etcResolvConf  = "/etc/resolv.conf"
	hostDevShmPath = "/dev/shm"
)

// defaultMounts are the kernel filesystems every container gets, as
// containerd mounts them. /sys and the cgroupfs are read-only unless
// privileged: writing there changes the host.
//
// A container in its pod's own user namespace but the host's network
// namespace (KEP-5607) cannot mount a sysfs: the kernel allows that only
// to a user namespace owning the network namespace, and the host's belongs
// to the host's. It gets the host's /sys bound instead, recursively (a
// plain bind is refused where the copied mounts are locked), as
// containerd and CRI-O do; the cgroup mount and the masked paths still
// cover what they cover.
func defaultMounts(privileged, hostSysfs bool) []specs.Mount {
	mode := "ro"
	if privileged {
		mode = "rw"
	}
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", mode}}
	if hostSysfs {
		sys = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "rprivate", "nosuid", "noexec", "nodev", mode}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", mode}},
	}
}

// specMounts returns the container's mounts and the rootfs propagation its
// CRI mounts need. The defaults come first, minus those a CRI mount
// replaces (all of /dev's when it mounts /dev, as containerd does); then
// the pod's files and the CRI mounts, sorted by depth so that a parent is
// mounted before its children (a CRI mount at /etc must not hide
// /etc/hosts).
func specMounts(in SpecInput) ([]specs.Mount, string, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	var cri []specs.Mount
	taken := make(map[string]bool)
	propagation := ""
	for i, m := range in.Config.GetMounts() {
		sm, err := criMount(i, m, in.ImageVolumes)
		if err != nil {
			return nil, "", err
		}
		cri = append(cri, sm)
		taken[path.Clean(sm.Destination)] = true
		propagation = rootfsPropagation(propagation, m.GetPropagation())
	}

	var mounts []specs.Mount
	hostSysfs := in.Sandbox.Namespaces["user"] != "" && in.Sandbox.Namespaces["net"] == ""
	for _, m := range defaultMounts(sc.GetPrivileged(), hostSysfs) {
		if taken[m.Destination] || (taken["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		mounts = append(mounts, m)
	}
	extra := append(podMounts(in.Sandbox, sc.GetReadonlyRootfs(), taken), cri...)
	sort.SliceStable(extra, func(a, b int) bool {
		return mountDepth(extra[a].Destination) < mountDepth(extra[b].Destination)
	})
	return append(mounts, extra...), propagation, nil
}

func mountDepth(p string) int {
	return strings.Count(path.Clean(p), "/")
}

// rootfsPropagation is what the rootfs must be for a mount's propagation to
// work: a slave or shared mount inside a private rootfs receives nothing.
// Shared wins over slave. "" leaves runc's default (rslave).
func rootfsPropagation(cur string, p runtime.MountPropagation) string {
	switch {
	case p == runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared"
	case p == runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && cur == "":
		return "rslave"
	}
	return cur
}

// podMounts bind the pod's /dev/shm, hostname, hosts and resolv.conf, each
// unless a CRI mount takes its path. The pod's shm tmpfs carries its own
// nosuid,nodev,noexec; host IPC gets the host's /dev/shm as it is.
func podMounts(sb SandboxInfo, readonlyRootfs bool, taken map[string]bool) []specs.Mount {
	var out []specs.Mount
	add := func(dst, src string, readonly bool) {
		if src == "" || taken[dst] {
			return
		}
		mode := "rw"
		if readonly {
			mode = "ro"
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", mode}})
	}
	shm := sb.ShmPath
	if shm == "" {
		shm = hostDevShmPath
	}
	add(devShm, shm, false)
	add(etcHostname, sb.HostnamePath, readonlyRootfs)
	add(etcHosts, sb.HostsPath, readonlyRootfs)
	add(etcResolvConf, sb.ResolvPath, readonlyRootfs)
	return out
}

// criMount turns Config.mounts[i] into a bind mount.
func criMount(i int, m *runtime.Mount, imageVolumes map[int]string) (specs.Mount, error) {
	field := fmt.Sprintf("config.mounts[%d]", i)
	dst := m.GetContainerPath()
	if !path.IsAbs(dst) {
		return specs.Mount{}, errdefs.InvalidArgument(field+".container_path", "%q is not an absolute path", dst)
	}
	if slices.Contains(strings.Split(dst, "/"), "..") {
		return specs.Mount{}, errdefs.InvalidArgument(field+".container_path", "%q contains \"..\"", dst)
	}
	if (len(m.GetUidMappings()) > 0) != (len(m.GetGidMappings()) > 0) {
		return specs.Mount{}, errdefs.InvalidArgument(field, "an ID-mapped mount needs both UID and GID mappings")
	}
	src, err := mountSource(i, m, imageVolumes)
	if err != nil {
		return specs.Mount{}, err
	}
	prop, err := propagationOption(m.GetPropagation(), field+".propagation")
	if err != nil {
		return specs.Mount{}, err
	}
	opts := []string{"rbind", prop}
	switch {
	case m.GetRecursiveReadOnly() && !m.GetReadonly():
		return specs.Mount{}, errdefs.InvalidArgument(field+".recursive_read_only", "needs readonly")
	case m.GetRecursiveReadOnly() && m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE:
		// A read-only flag does not propagate: a submount arriving later
		// from the host would be writable.
		return specs.Mount{}, errdefs.InvalidArgument(field+".recursive_read_only", "needs propagation PROPAGATION_PRIVATE, not %s", m.GetPropagation())
	case m.GetRecursiveReadOnly():
		opts = append(opts, "ro", "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	if m.GetImage() != nil {
		// huskd's mount of the image already has them, but libcontainer's
		// remount of the bind sets exactly the flags listed here: left
		// out, they would be cleared.
		opts = append(opts, "nosuid", "nodev")
	}
	extra, err := extraMountOptions(m.GetMountOptions(), field+".mount_options")
	if err != nil {
		return specs.Mount{}, err
	}
	out := specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append(opts, extra...)}
	// kubelet maps a volume's IDs for a pod in its own user namespace;
	// libcontainer makes it an ID-mapped bind mount.
	for _, x := range m.GetUidMappings() {
		out.UIDMappings = append(out.UIDMappings, specs.LinuxIDMapping{ContainerID: x.GetContainerId(), HostID: x.GetHostId(), Size: x.GetLength()})
	}
	for _, x := range m.GetGidMappings() {
		out.GIDMappings = append(out.GIDMappings, specs.LinuxIDMapping{ContainerID: x.GetContainerId(), HostID: x.GetHostId(), Size: x.GetLength()})
	}
	return out, nil
}

// mountSource is the host path, or for an image volume the path husk
// mounted what its sub path resolved to on (mountImageVolume).
func mountSource(i int, m *runtime.Mount, imageVolumes map[int]string) (string, error) {
	field := fmt.Sprintf("config.mounts[%d]", i)
	if m.GetImage() == nil {
		if m.GetImageSubPath() != "" {
			return "", errdefs.InvalidArgument(field+".image_sub_path", "is set without image")
		}
		if !path.IsAbs(m.GetHostPath()) {
			return "", errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", m.GetHostPath())
		}
		return m.GetHostPath(), nil
	}
	if err := CheckImageMount(i, m); err != nil {
		return "", err
	}
	dir := imageVolumes[i]
	if dir == "" {
		return "", errdefs.FailedPrecondition("%s.image: image %q is not mounted", field, m.GetImage().GetImage())
	}
	return dir, nil
}

// CheckImageMount is what Config.mounts[i] with an image must be before
// anything is mounted for it (a pure check: the CRI server runs it with
// the request's other checks). kubelet sends only relative sub paths
// without "..": one that is not is refused rather than resolved, though
// the resolution would keep it inside the image all the same.
func CheckImageMount(i int, m *runtime.Mount) error {
	field := fmt.Sprintf("config.mounts[%d]", i)
	if !m.GetReadonly() {
		// The image is shared by every container mounting it.
		return errdefs.InvalidArgument(field+".readonly", "an image volume must be read-only")
	}
	if sub := m.GetImageSubPath(); path.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") || strings.ContainsRune(sub, 0) {
		return errdefs.InvalidArgument(field+".image_sub_path", "%q must be a relative path inside the image, without \"..\"", sub)
	}
	return nil
}

func propagationOption(p runtime.MountPropagation, field string) (string, error) {
	switch p {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		return "rprivate", nil
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave", nil
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared", nil
	}
	return "", errdefs.InvalidArgument(field, "unknown propagation %d", p)
}

// allowedMountOptions are the mount_options that only restrict a bind
// mount. Others could undo what the mount's own fields say (rw, suid,
// propagation) or are not bind options at all.
var allowedMountOptions = map[string]bool{
	"nosuid": true, "nodev": true, "noexec": true, "noatime": true,
	"nodiratime": true, "relatime": true, "strictatime": true, "nosymfollow": true,
	"rnosuid": true, "rnodev": true, "rnoexec": true, "rnoatime": true,
	"rnodiratime": true, "rrelatime": true, "rstrictatime": true, "rnosymfollow": true,
}

func extraMountOptions(opts []string, field string) ([]string, error) {
	for i, o := range opts {
		if !allowedMountOptions[o] {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("%s[%d]", field, i), "unsupported bind mount option %q", o)
		}
	}
	return opts, nil
}

// specDevices returns the device nodes to create and the cgroup device
// rules. The rules deny everything but the config's devices; libcontainer
// appends its own defaults (/dev/null, /dev/zero, ptys, ...) after them.
// A privileged container gets every host device and access to all.
func specDevices(in SpecInput) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	stat := in.StatDevice
	if stat == nil {
		stat = statDevice
	}
	var devices []specs.LinuxDevice
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for i, d := range in.Config.GetDevices() {
		dev, rule, err := configDevice(i, d, stat)
		if err != nil {
			return nil, nil, err
		}
		devices = append(devices, dev)
		rules = append(rules, rule)
	}
	if !in.Config.GetLinux().GetSecurityContext().GetPrivileged() {
		return devices, rules, nil
	}
	if in.HostDevices != nil {
		host, err := in.HostDevices()
		if err != nil {
			return nil, nil, fmt.Errorf("listing host devices: %w", err)
		}
		for _, h := range host {
			// The config's device at the same path wins.
			if !slices.ContainsFunc(devices, func(d specs.LinuxDevice) bool { return d.Path == h.Path }) {
				devices = append(devices, h)
			}
		}
	}
	return devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, nil
}

// configDevice turns Config.devices[i] into a node copying the host's and
// a rule allowing its permissions.
func configDevice(i int, d *runtime.Device, stat func(string) (DeviceInfo, error)) (specs.LinuxDevice, specs.LinuxDeviceCgroup, error) {
	field := fmt.Sprintf("config.devices[%d]", i)
	host := d.GetHostPath()
	if !path.IsAbs(host) {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", host)
	}
	dst := d.GetContainerPath()
	if dst == "" {
		dst = host
	}
	if !path.IsAbs(dst) {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument(field+".container_path", "%q is not an absolute path", dst)
	}
	perms := d.GetPermissions()
	if perms == "" {
		perms = "rwm"
	}
	if !validDeviceAccess(perms) {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument(field+".permissions", "%q is not a combination of r, w and m", perms)
	}
	info, err := stat(host)
	if err != nil {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument(field+".host_path", "%v", err)
	}
	if info.Type != 'c' && info.Type != 'b' {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument(field+".host_path", "%s is not a character or block device", host)
	}
	mode, uid, gid, major, minor := info.FileMode, info.UID, info.GID, info.Major, info.Minor
	dev := specs.LinuxDevice{Path: dst, Type: string(info.Type), Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid}
	rule := specs.LinuxDeviceCgroup{Allow: true, Type: string(info.Type), Major: &major, Minor: &minor, Access: perms}
	return dev, rule, nil
}

func validDeviceAccess(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for i, c := range s {
		if !strings.ContainsRune("rwm", c) || strings.ContainsRune(s[:i], c) {
			return false
		}
	}
	return true
}
