package container

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SpecInput is everything Spec turns into a container's OCI runtime spec.
type SpecInput struct {
	ID      string                   // container ID
	Config  *runtime.ContainerConfig // as CreateContainer received it
	Image   ImageConfig
	ImageID string
	Sandbox SandboxInfo
	Node    NodeInfo
	Rootfs  string // the mounted overlay rootfs (absolute)
	// ImageVolumes maps the index of a Config.Mounts entry that has
	// Mount.image set to the host directory where husk mounted that image
	// read-only.
	ImageVolumes map[int]string
	// TargetPID is the init pid of the container named by
	// namespace_options.target_id (pid mode TARGET); 0 otherwise.
	TargetPID int
	Users     UserDB
	// ReadFile reads Localhost seccomp profiles; nil means
	// readSeccompProfile.
	ReadFile func(path string) ([]byte, error)
	// StatDevice describes the device node at a host path (following
	// symlinks); nil means stat(2).
	StatDevice func(path string) (DeviceInfo, error)
	// HostDevices lists all host devices, for privileged containers; nil
	// means none.
	HostDevices func() ([]specs.LinuxDevice, error)
}

// DeviceInfo is what a container's device node copies from the host's.
type DeviceInfo struct {
	Type         byte // 'c' or 'b'
	Major, Minor int64
	FileMode     os.FileMode // permission bits
	UID, GID     uint32
}

// The CRI annotations containerd sets, which tools on the node read.
const (
	annotationContainerType = "io.kubernetes.cri.container-type"
	annotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	annotationContainerName = "io.kubernetes.cri.container-name"
	annotationImageName     = "io.kubernetes.cri.image-name"
)

// fieldSC prefixes the security context's fields in error messages.
const fieldSC = "config.linux.security_context"

// Spec turns a CRI ContainerConfig, its image and its pod into the OCI
// runtime spec that runc's libcontainer runs, and the identity the process
// gets (which ContainerStatus.user reports). It reads nothing but a
// Localhost seccomp profile and device nodes, through in's functions (and
// the kernel version, which the default seccomp profile depends on). Bad
// input returns an InvalidArgument error naming the CRI field at fault; what
// this node cannot do, a FailedPrecondition one.
func Spec(in SpecInput) (*specs.Spec, User, error) {
	cfg := in.Config
	if cfg == nil {
		return nil, User{}, errdefs.InvalidArgument("config", "must be set")
	}
	if cfg.GetMetadata() == nil {
		return nil, User{}, errdefs.InvalidArgument("config.metadata", "must be set")
	}
	if !path.IsAbs(in.Rootfs) {
		return nil, User{}, fmt.Errorf("container rootfs %q is not an absolute path", in.Rootfs)
	}
	sc := cfg.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()

	proc, user, err := process(in)
	if err != nil {
		return nil, User{}, err
	}
	namespaces, err := linuxNamespaces(in)
	if err != nil {
		return nil, User{}, err
	}
	mounts, rootfsPropagation, err := specMounts(in)
	if err != nil {
		return nil, User{}, err
	}
	resources, err := Resources(cfg.GetLinux().GetResources(), in.Node)
	if err != nil {
		return nil, User{}, err
	}
	devices, rules, err := specDevices(in)
	if err != nil {
		return nil, User{}, err
	}
	resources.Devices = rules

	s := &specs.Spec{
		Version:     specs.Version,
		Process:     proc,
		Root:        &specs.Root{Path: in.Rootfs, Readonly: sc.GetReadonlyRootfs()},
		Mounts:      mounts,
		Annotations: annotations(in),
		Linux: &specs.Linux{
			Resources:         resources,
			CgroupsPath:       cgroup.SpecPath(in.Sandbox.Cgroup),
			Namespaces:        namespaces,
			Devices:           devices,
			RootfsPropagation: rootfsPropagation,
		},
	}
	if in.Sandbox.Namespaces["user"] != "" {
		// Joining the pod's user namespace: libcontainer checks the IDs it
		// sets up against these.
		s.Linux.UIDMappings = slices.Clone(in.Sandbox.UIDMappings)
		s.Linux.GIDMappings = slices.Clone(in.Sandbox.GIDMappings)
	}
	if !privileged {
		// A privileged container sees the whole host, masked nothing.
		// Copies: the spec outlives the request and may be edited.
		s.Linux.MaskedPaths = slices.Clone(sc.GetMaskedPaths())
		s.Linux.ReadonlyPaths = slices.Clone(sc.GetReadonlyPaths())
	}
	// Seccomp last: the default profile allows syscalls by the
	// capabilities already in the spec.
	if s.Linux.Seccomp, err = seccompProfile(in, s); err != nil {
		return nil, User{}, err
	}
	return s, user, nil
}

// process builds the container's init process.
func process(in SpecInput) (*specs.Process, User, error) {
	cfg := in.Config
	sc := cfg.GetLinux().GetSecurityContext()
	args, err := processArgs(cfg, in.Image)
	if err != nil {
		return nil, User{}, err
	}
	env, err := processEnv(in.Image.Env, cfg.GetEnvs())
	if err != nil {
		return nil, User{}, err
	}
	cwd, err := workingDir(cfg.GetWorkingDir(), in.Image.WorkingDir)
	if err != nil {
		return nil, User{}, err
	}
	users := in.Users
	if users == nil {
		users = ParseUserDB(nil, nil)
	}
	user, err := resolveUser(sc, in.Image.User, users)
	if err != nil {
		return nil, User{}, err
	}
	caps, err := capabilities(sc, in.Node)
	if err != nil {
		return nil, User{}, err
	}
	apparmor, err := apparmorProfile(sc, in.Node)
	if err != nil {
		return nil, User{}, err
	}
	oom, err := oomScoreAdj(cfg.GetLinux().GetResources().GetOomScoreAdj(), in.Node.OOMScoreAdjFloor)
	if err != nil {
		return nil, User{}, err
	}
	p := &specs.Process{
		Terminal: cfg.GetTty(),
		User: specs.User{
			UID:            uint32(user.UID),
			GID:            uint32(user.GID),
			AdditionalGids: toUint32s(user.SupplementalGroups),
		},
		Args:            args,
		Env:             env,
		Cwd:             cwd,
		Capabilities:    caps,
		NoNewPrivileges: sc.GetNoNewPrivs(),
		ApparmorProfile: apparmor,
		OOMScoreAdj:     &oom,
	}
	return p, user, nil
}

func toUint32s(ids []int64) []uint32 {
	if len(ids) == 0 {
		return nil
	}
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}

// oomScoreAdj clamps the request to husk's own score: lowering it needs
// CAP_SYS_RESOURCE, which root here lacks, and asking anyway fails the
// container's start.
func oomScoreAdj(requested int64, floor int) (int, error) {
	if requested < -1000 || requested > 1000 {
		return 0, errdefs.InvalidArgument("config.linux.resources.oom_score_adj", "%d is outside [-1000, 1000]", requested)
	}
	return max(int(requested), floor), nil
}

// annotations are the config's plus the CRI ones, which win: tools on the
// node trust them to say what the container is.
func annotations(in SpecInput) map[string]string {
	a := make(map[string]string, len(in.Config.GetAnnotations())+4)
	for k, v := range in.Config.GetAnnotations() {
		a[k] = v
	}
	a[annotationContainerType] = "container"
	a[annotationSandboxID] = in.Sandbox.ID
	a[annotationContainerName] = in.Config.GetMetadata().GetName()
	a[annotationImageName] = in.Config.GetImage().GetImage()
	return a
}

// statDevice is the real StatDevice: stat(2), which follows symlinks as
// /dev/disk/by-id paths need.
func statDevice(p string) (DeviceInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return DeviceInfo{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	var t byte
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		t = 'c'
	case unix.S_IFBLK:
		t = 'b'
	default:
		return DeviceInfo{}, fmt.Errorf("%s is not a device node", p)
	}
	rdev := uint64(st.Rdev)
	return DeviceInfo{
		Type:     t,
		Major:    int64(unix.Major(rdev)),
		Minor:    int64(unix.Minor(rdev)),
		FileMode: os.FileMode(st.Mode & 0o777),
		UID:      st.Uid,
		GID:      st.Gid,
	}, nil
}
