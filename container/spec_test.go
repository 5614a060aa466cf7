//lint:file-ignore SA1019 the deprecated seccomp and AppArmor fields are still honoured; these tests cover them

package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testPasswd = `# users
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000::/home/app:/bin/sh
svc:x:1001:2000::/srv:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:app
wheel:x:10:root,app
users:x:100:app,svc
app:x:1000:
svcgrp:x:2000:
extra:x:50000:app
`

const (
	testRootfs   = "/var/lib/husk/containers/c1/rootfs"
	testShm      = "/run/husk/pods/pod1/shm"
	testHostname = "/var/lib/husk/pods/pod1/hostname"
	testHosts    = "/var/lib/husk/pods/pod1/hosts"
	testResolv   = "/var/lib/husk/pods/pod1/resolv.conf"
	testProfiles = "/var/lib/kubelet/seccomp"
)

// Profiles like critest's: one blocks chmod, one is not JSON.
var testFiles = map[string]string{
	"/etc/husk/block-chmod.json":             `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`,
	testProfiles + "/profiles/audit.json":    `{"defaultAction":"SCMP_ACT_LOG"}`,
	"/etc/husk/broken.json":                  `{"defaultAction":`,
	"/etc/husk/both-name-and-names.json":     `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"chmod","names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}`,
	testProfiles + "/profiles/missing-ok.js": `{}`,
}

var testDevices = map[string]DeviceInfo{
	"/dev/fuse": {Type: 'c', Major: 10, Minor: 229, FileMode: 0o666},
	"/dev/sda":  {Type: 'b', Major: 8, Minor: 0, FileMode: 0o660, GID: 6},
	"/dev/odd":  {Type: 'p'},
}

func fakeReadFile(p string) ([]byte, error) {
	if s, ok := testFiles[p]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

func fakeStatDevice(p string) (DeviceInfo, error) {
	if d, ok := testDevices[p]; ok {
		return d, nil
	}
	return DeviceInfo{}, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

func baseInput() SpecInput {
	return SpecInput{
		ID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "docker.io/library/busybox:latest"},
		},
		Image: ImageConfig{
			Cmd: []string{"sh"},
			Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"},
		},
		ImageID: "sha256:0123",
		Sandbox: SandboxInfo{
			ID: "pod1",
			Namespaces: map[string]string{
				"net": "/run/husk/ns/pod1/net",
				"ipc": "/run/husk/ns/pod1/ipc",
				"uts": "/run/husk/ns/pod1/uts",
			},
			PausePID:     42,
			Cgroup:       "/kubepods/besteffort/pod1/c1",
			HostnamePath: testHostname,
			HostsPath:    testHosts,
			ResolvPath:   testResolv,
			ShmPath:      testShm,
		},
		Node: NodeInfo{
			OOMScoreAdjFloor:   -999,
			CgroupV2:           true,
			HugetlbController:  true,
			SeccompProfileRoot: testProfiles,
		},
		Rootfs:     testRootfs,
		Users:      ParseUserDB([]byte(testPasswd), []byte(testGroup)),
		ReadFile:   fakeReadFile,
		StatDevice: fakeStatDevice,
	}
}

// secCtx returns in's security context, creating it.
func secCtx(in *SpecInput) *runtime.LinuxContainerSecurityContext {
	if in.Config.Linux == nil {
		in.Config.Linux = &runtime.LinuxContainerConfig{}
	}
	if in.Config.Linux.SecurityContext == nil {
		in.Config.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{}
	}
	return in.Config.Linux.SecurityContext
}

func resources(in *SpecInput) *runtime.LinuxContainerResources {
	if in.Config.Linux == nil {
		in.Config.Linux = &runtime.LinuxContainerConfig{}
	}
	if in.Config.Linux.Resources == nil {
		in.Config.Linux.Resources = &runtime.LinuxContainerResources{}
	}
	return in.Config.Linux.Resources
}

type specCase struct {
	name  string
	mod   func(in *SpecInput)
	code  codes.Code // codes.OK: Spec must succeed
	field string     // the error must name this field
	check func(t *testing.T, s *specs.Spec, u User)
}

func runSpecCases(t *testing.T, cases []specCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := baseInput()
			if c.mod != nil {
				c.mod(&in)
			}
			s, u, err := Spec(in)
			if got := errdefs.Code(err); got != c.code {
				t.Fatalf("Spec: code %v, want %v (err: %v)", got, c.code, err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), c.field) {
					t.Errorf("error %q does not name %q", err, c.field)
				}
				return
			}
			if c.check != nil {
				c.check(t, s, u)
			}
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

func TestSpecArgs(t *testing.T) {
	args := func(want ...string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "args", s.Process.Args, want) }
	}
	runSpecCases(t, []specCase{
		{name: "image cmd", check: args("sh")},
		{name: "image entrypoint and cmd", mod: func(in *SpecInput) {
			in.Image.Entrypoint = []string{"/entry"}
			in.Image.Cmd = []string{"a", "b"}
		}, check: args("/entry", "a", "b")},
		{name: "config args replace cmd only", mod: func(in *SpecInput) {
			in.Image.Entrypoint = []string{"/entry"}
			in.Config.Args = []string{"x"}
		}, check: args("/entry", "x")},
		{name: "config args without entrypoint", mod: func(in *SpecInput) {
			in.Config.Args = []string{"echo", "hi"}
		}, check: args("echo", "hi")},
		{name: "config command replaces entrypoint and cmd", mod: func(in *SpecInput) {
			in.Image.Entrypoint = []string{"/entry"}
			in.Config.Command = []string{"/bin/true"}
		}, check: args("/bin/true")},
		{name: "config command and args", mod: func(in *SpecInput) {
			in.Image.Entrypoint = []string{"/entry"}
			in.Config.Command = []string{"sh", "-c"}
			in.Config.Args = []string{"echo hi"}
		}, check: args("sh", "-c", "echo hi")},
		{name: "empty-string entrypoint resets", mod: func(in *SpecInput) {
			in.Image.Entrypoint = []string{""}
			in.Image.Cmd = []string{"run"}
		}, check: args("run")},
		{name: "nothing to run", mod: func(in *SpecInput) {
			in.Image.Cmd = nil
		}, code: codes.InvalidArgument, field: "config.command"},
		{name: "empty executable", mod: func(in *SpecInput) {
			in.Config.Command = []string{""}
		}, code: codes.InvalidArgument, field: "config.command"},
	})
}

func TestSpecEnv(t *testing.T) {
	kv := func(k, v string) *runtime.KeyValue { return &runtime.KeyValue{Key: k, Value: []byte(v)} }
	env := func(want ...string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "env", s.Process.Env, want) }
	}
	runSpecCases(t, []specCase{
		{name: "image env", check: env("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C")},
		{name: "config overrides in place and appends", mod: func(in *SpecInput) {
			in.Config.Envs = []*runtime.KeyValue{kv("FOO", "1"), kv("PATH", "/opt/bin"), kv("EMPTY", "")}
		}, check: env("PATH=/opt/bin", "LANG=C", "FOO=1", "EMPTY=")},
		{name: "later config value wins", mod: func(in *SpecInput) {
			in.Config.Envs = []*runtime.KeyValue{kv("A", "1"), kv("A", "2")}
		}, check: env("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "A=2")},
		{name: "default PATH when the image has none", mod: func(in *SpecInput) {
			in.Image.Env = []string{"LANG=C"}
		}, check: env(defaultPathEnv, "LANG=C")},
		{name: "config PATH is enough", mod: func(in *SpecInput) {
			in.Image.Env = nil
			in.Config.Envs = []*runtime.KeyValue{kv("PATH", "/bin")}
		}, check: env("PATH=/bin")},
		{name: "empty key", mod: func(in *SpecInput) {
			in.Config.Envs = []*runtime.KeyValue{kv("A", "1"), kv("", "x")}
		}, code: codes.InvalidArgument, field: "config.envs[1].key"},
	})
}

func TestSpecCwd(t *testing.T) {
	cwd := func(want string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "cwd", s.Process.Cwd, want) }
	}
	runSpecCases(t, []specCase{
		{name: "default", check: cwd("/")},
		{name: "image", mod: func(in *SpecInput) { in.Image.WorkingDir = "/app" }, check: cwd("/app")},
		{name: "relative image dir is under /", mod: func(in *SpecInput) { in.Image.WorkingDir = "app/x" }, check: cwd("/app/x")},
		{name: "config wins", mod: func(in *SpecInput) {
			in.Image.WorkingDir = "/app"
			in.Config.WorkingDir = "/work"
		}, check: cwd("/work")},
		{name: "relative config dir", mod: func(in *SpecInput) { in.Config.WorkingDir = "work" },
			code: codes.InvalidArgument, field: "config.working_dir"},
	})
}

func TestSpecUser(t *testing.T) {
	user := func(uid, gid int64, groups ...int64) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, u User) {
			eq(t, "user", u, User{UID: uid, GID: gid, SupplementalGroups: groups})
			var gids []uint32
			for _, g := range groups {
				gids = append(gids, uint32(g))
			}
			eq(t, "process user", s.Process.User, specs.User{UID: uint32(uid), GID: uint32(gid), AdditionalGids: gids})
		}
	}
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	runSpecCases(t, []specCase{
		{name: "root by default, with root's image groups", check: user(0, 0, 0, 10)},
		{name: "root without an /etc/passwd", mod: func(in *SpecInput) { in.Users = ParseUserDB(nil, nil) }, check: user(0, 0, 0)},
		{name: "nil UserDB", mod: func(in *SpecInput) { in.Users = nil }, check: user(0, 0, 0)},
		{name: "image user by name", mod: func(in *SpecInput) { in.Image.User = "app" }, check: user(1000, 1000, 1, 10, 100, 1000, 50000)},
		{name: "image user by uid", mod: func(in *SpecInput) { in.Image.User = "1000" }, check: user(1000, 1000, 1, 10, 100, 1000, 50000)},
		{name: "image uid:gid", mod: func(in *SpecInput) { in.Image.User = "1000:100" }, check: user(1000, 100, 1, 10, 100, 50000)},
		{name: "image name:group", mod: func(in *SpecInput) { in.Image.User = "app:svcgrp" }, check: user(1000, 2000, 1, 10, 100, 2000, 50000)},
		{name: "image uid without passwd entry", mod: func(in *SpecInput) { in.Image.User = "4242" }, check: user(4242, 0, 0)},
		{name: "image uid:gid without entries", mod: func(in *SpecInput) { in.Image.User = "4242:4343" }, check: user(4242, 4343, 4343)},
		{name: "image user not in passwd", mod: func(in *SpecInput) { in.Image.User = "ghost" },
			code: codes.InvalidArgument, field: "config.image"},
		{name: "image group not in group", mod: func(in *SpecInput) { in.Image.User = "app:ghosts" },
			code: codes.InvalidArgument, field: "config.image"},
		{name: "run_as_user with passwd entry", mod: func(in *SpecInput) {
			in.Image.User = "app"
			secCtx(in).RunAsUser = i64(1001)
		}, check: user(1001, 2000, 100, 2000)},
		{name: "run_as_user without passwd entry", mod: func(in *SpecInput) { secCtx(in).RunAsUser = i64(5555) }, check: user(5555, 0, 0)},
		{name: "run_as_user 0", mod: func(in *SpecInput) {
			in.Image.User = "app"
			secCtx(in).RunAsUser = i64(0)
		}, check: user(0, 0, 0, 10)},
		{name: "run_as_username", mod: func(in *SpecInput) { secCtx(in).RunAsUsername = "nobody" }, check: user(65534, 65534, 65534)},
		{name: "run_as_username wins over run_as_user", mod: func(in *SpecInput) {
			secCtx(in).RunAsUsername = "svc"
			secCtx(in).RunAsUser = i64(1000)
		}, check: user(1001, 2000, 100, 2000)},
		{name: "run_as_username not in passwd", mod: func(in *SpecInput) { secCtx(in).RunAsUsername = "ghost" },
			code: codes.InvalidArgument, field: "config.linux.security_context.run_as_username"},
		{name: "run_as_group", mod: func(in *SpecInput) {
			secCtx(in).RunAsUser = i64(1001)
			secCtx(in).RunAsGroup = i64(1002)
		}, check: user(1001, 1002, 100, 1002)},
		{name: "run_as_group with run_as_username", mod: func(in *SpecInput) {
			secCtx(in).RunAsUsername = "app"
			secCtx(in).RunAsGroup = i64(7)
		}, check: user(1000, 7, 1, 7, 10, 100, 50000)},
		{name: "run_as_group without a user", mod: func(in *SpecInput) {
			in.Image.User = "app"
			secCtx(in).RunAsGroup = i64(1002)
		}, code: codes.InvalidArgument, field: "config.linux.security_context.run_as_group"},
		{name: "negative run_as_user", mod: func(in *SpecInput) { secCtx(in).RunAsUser = i64(-1) },
			code: codes.InvalidArgument, field: "config.linux.security_context.run_as_user"},
		{name: "run_as_user (uid_t)-1", mod: func(in *SpecInput) { secCtx(in).RunAsUser = i64(1<<32 - 1) },
			code: codes.InvalidArgument, field: "config.linux.security_context.run_as_user"},
		{name: "negative run_as_group", mod: func(in *SpecInput) {
			secCtx(in).RunAsUser = i64(1)
			secCtx(in).RunAsGroup = i64(-5)
		}, code: codes.InvalidArgument, field: "config.linux.security_context.run_as_group"},
	})
}

// The critest SupplementalGroupsPolicy cases: uid 1000 in image group 50000.
func TestSpecSupplementalGroups(t *testing.T) {
	critestImage := func(in *SpecInput) {
		in.Users = ParseUserDB(
			[]byte("root:x:0:0::/root:/bin/sh\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\n"),
			[]byte("root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"))
		in.Image.User = "default-user"
		secCtx(in).RunAsUser = &runtime.Int64Value{Value: 1000}
		secCtx(in).SupplementalGroups = []int64{1234}
	}
	groups := func(want ...int64) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, u User) {
			eq(t, "user", u, User{UID: 1000, GID: 1000, SupplementalGroups: want})
			eq(t, "additional gids", s.Process.User.AdditionalGids, toUint32s(want))
		}
	}
	runSpecCases(t, []specCase{
		{name: "merge (default)", mod: critestImage, check: groups(1000, 1234, 50000)},
		{name: "strict", mod: func(in *SpecInput) {
			critestImage(in)
			secCtx(in).SupplementalGroupsPolicy = runtime.SupplementalGroupsPolicy_Strict
		}, check: groups(1000, 1234)},
		{name: "duplicates listed once", mod: func(in *SpecInput) {
			critestImage(in)
			secCtx(in).SupplementalGroups = []int64{50000, 1234, 1000, 1234}
		}, check: groups(1000, 1234, 50000)},
		{name: "unknown policy", mod: func(in *SpecInput) {
			secCtx(in).SupplementalGroupsPolicy = 7
		}, code: codes.InvalidArgument, field: "config.linux.security_context.supplemental_groups_policy"},
		{name: "negative group", mod: func(in *SpecInput) {
			secCtx(in).SupplementalGroups = []int64{5, -2}
		}, code: codes.InvalidArgument, field: "config.linux.security_context.supplemental_groups[1]"},
	})
}

func TestSpecNamespaces(t *testing.T) {
	mnt := specs.LinuxNamespace{Type: specs.MountNamespace}
	net := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/husk/ns/pod1/net"}
	ipc := specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "/run/husk/ns/pod1/ipc"}
	uts := specs.LinuxNamespace{Type: specs.UTSNamespace, Path: "/run/husk/ns/pod1/uts"}
	podPID := specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}
	cgroup := specs.LinuxNamespace{Type: specs.CgroupNamespace}
	ns := func(want ...specs.LinuxNamespace) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "namespaces", s.Linux.Namespaces, want)
			eq(t, "hostname", s.Hostname, "")
		}
	}
	pid := func(in *SpecInput, mode runtime.NamespaceMode, target string) {
		secCtx(in).NamespaceOptions = &runtime.NamespaceOption{Pid: mode, TargetId: target}
	}
	runSpecCases(t, []specCase{
		{name: "pod pid", check: ns(mnt, net, ipc, uts, podPID, cgroup)},
		{name: "container pid", mod: func(in *SpecInput) { pid(in, runtime.NamespaceMode_CONTAINER, "") },
			check: ns(mnt, net, ipc, uts, specs.LinuxNamespace{Type: specs.PIDNamespace}, cgroup)},
		{name: "host pid", mod: func(in *SpecInput) { pid(in, runtime.NamespaceMode_NODE, "") },
			check: ns(mnt, net, ipc, uts, cgroup)},
		{name: "target pid", mod: func(in *SpecInput) {
			pid(in, runtime.NamespaceMode_TARGET, "c0")
			in.TargetPID = 777
		}, check: ns(mnt, net, ipc, uts, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/777/ns/pid"}, cgroup)},
		{name: "target not running", mod: func(in *SpecInput) { pid(in, runtime.NamespaceMode_TARGET, "c0") },
			code: codes.InvalidArgument, field: "config.linux.security_context.namespace_options.target_id"},
		{name: "target without id", mod: func(in *SpecInput) {
			pid(in, runtime.NamespaceMode_TARGET, "")
			in.TargetPID = 777
		}, code: codes.InvalidArgument, field: "config.linux.security_context.namespace_options.target_id"},
		{name: "unknown pid mode", mod: func(in *SpecInput) { pid(in, 9, "") },
			code: codes.InvalidArgument, field: "config.linux.security_context.namespace_options.pid"},
		{name: "pod without pause", mod: func(in *SpecInput) { in.Sandbox.PausePID = 0 },
			code: codes.FailedPrecondition, field: "pod1"},
		{name: "host network, ipc and uts", mod: func(in *SpecInput) { in.Sandbox.Namespaces = nil },
			check: ns(mnt, podPID, cgroup)},
		{name: "host network only", mod: func(in *SpecInput) { delete(in.Sandbox.Namespaces, "net") },
			check: ns(mnt, ipc, uts, podPID, cgroup)},
		{name: "no cgroup namespace on v1", mod: func(in *SpecInput) { in.Node.CgroupV2 = false },
			check: ns(mnt, net, ipc, uts, podPID)},
		{name: "no cgroup namespace when privileged", mod: func(in *SpecInput) { secCtx(in).Privileged = true },
			check: ns(mnt, net, ipc, uts, podPID)},
		{name: "host user namespace", mod: func(in *SpecInput) {
			secCtx(in).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}}
		}, check: ns(mnt, net, ipc, uts, podPID, cgroup)},
		{name: "pod user namespace, pod has none", mod: func(in *SpecInput) {
			secCtx(in).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}
		}, code: codes.InvalidArgument, field: "userns_options"},
		{name: "pod user namespace", mod: func(in *SpecInput) {
			secCtx(in).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}
			in.Sandbox.Namespaces["user"] = "/run/pod1/ns/user"
			in.Sandbox.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			in.Sandbox.GIDMappings = in.Sandbox.UIDMappings
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			if s.Linux.Namespaces[1] != (specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/pod1/ns/user"}) {
				t.Errorf("namespaces %v: want the pod's user namespace joined", s.Linux.Namespaces)
			}
			if len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != 100000 {
				t.Errorf("uid mappings %v", s.Linux.UIDMappings)
			}
		}},
		{name: "host user namespace in a pod that has its own", mod: func(in *SpecInput) {
			in.Sandbox.Namespaces["user"] = "/run/pod1/ns/user"
		}, code: codes.InvalidArgument, field: "userns_options"},
		{name: "container user namespace", mod: func(in *SpecInput) {
			secCtx(in).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}}
		}, code: codes.InvalidArgument, field: "config.linux.security_context.namespace_options.userns_options.mode"},
	})
}

// Expected mounts, spelled out rather than computed.
var (
	mProc    = specs.Mount{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}}
	mDev     = specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}}
	mPts     = specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}
	mMqueue  = specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}}
	mSys     = specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	mCgroup  = specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}}
	mShm     = bind("/dev/shm", testShm, "rbind", "rprivate", "rw")
	mHostnm  = bind("/etc/hostname", testHostname, "rbind", "rprivate", "rw")
	mHosts   = bind("/etc/hosts", testHosts, "rbind", "rprivate", "rw")
	mResolv  = bind("/etc/resolv.conf", testResolv, "rbind", "rprivate", "rw")
	defaults = []specs.Mount{mProc, mDev, mPts, mMqueue, mSys, mCgroup}
	podFiles = []specs.Mount{mShm, mHostnm, mHosts, mResolv}
)

func bind(dst, src string, opts ...string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// usernsNet puts the pod in a user namespace of its own, with the host's
// network namespace or its own.
func usernsNet(hostNetwork bool) func(*SpecInput) {
	return func(in *SpecInput) {
		in.Sandbox.Namespaces["user"] = "/run/husk/ns/pod1/user"
		if hostNetwork {
			delete(in.Sandbox.Namespaces, "net")
		}
		m := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
		secCtx(in).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}
	}
}

func TestSpecMounts(t *testing.T) {
	mounts := func(want ...[]specs.Mount) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "mounts", s.Mounts, slices.Concat(want...)) }
	}
	propagation := func(want string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "rootfs propagation", s.Linux.RootfsPropagation, want)
		}
	}
	one := func(m *runtime.Mount) func(*SpecInput) {
		return func(in *SpecInput) { in.Config.Mounts = []*runtime.Mount{m} }
	}
	ms := func(m ...specs.Mount) []specs.Mount { return m }
	runSpecCases(t, []specCase{
		{name: "defaults and pod files", check: mounts(defaults, podFiles)},
		{name: "read-only rootfs makes pod files read-only, not shm", mod: func(in *SpecInput) { secCtx(in).ReadonlyRootfs = true },
			check: mounts(defaults, ms(mShm,
				bind("/etc/hostname", testHostname, "rbind", "rprivate", "ro"),
				bind("/etc/hosts", testHosts, "rbind", "rprivate", "ro"),
				bind("/etc/resolv.conf", testResolv, "rbind", "rprivate", "ro")))},
		{name: "host IPC binds the host's /dev/shm", mod: func(in *SpecInput) { in.Sandbox.ShmPath = "" },
			check: mounts(defaults, ms(bind("/dev/shm", "/dev/shm", "rbind", "rprivate", "rw"), mHostnm, mHosts, mResolv))},
		{name: "pod without resolv.conf", mod: func(in *SpecInput) { in.Sandbox.ResolvPath = "" },
			check: mounts(defaults, ms(mShm, mHostnm, mHosts))},
		{name: "privileged: writable sysfs and cgroupfs", mod: func(in *SpecInput) { secCtx(in).Privileged = true },
			check: mounts(ms(mProc, mDev, mPts, mMqueue,
				specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "rw"}},
				specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "rw"}}),
				podFiles)},
		{name: "a CRI mount replaces a pod file", mod: one(&runtime.Mount{ContainerPath: "/etc/hosts", HostPath: "/k/hosts", Readonly: true}),
			check: mounts(defaults, ms(mShm, mHostnm, mResolv, bind("/etc/hosts", "/k/hosts", "rbind", "rprivate", "ro")))},
		{name: "a CRI mount replaces a default", mod: one(&runtime.Mount{ContainerPath: "/dev/mqueue/", HostPath: "/k/mq"}),
			check: mounts(ms(mProc, mDev, mPts, mSys, mCgroup), podFiles, ms(bind("/dev/mqueue/", "/k/mq", "rbind", "rprivate", "rw")))},
		{name: "a CRI /dev drops the defaults under /dev", mod: one(&runtime.Mount{ContainerPath: "/dev", HostPath: "/dev"}),
			check: mounts(ms(mProc, mSys, mCgroup), ms(bind("/dev", "/dev", "rbind", "rprivate", "rw")), podFiles)},
		{name: "sorted by depth, parents first, stable", mod: func(in *SpecInput) {
			in.Config.Mounts = []*runtime.Mount{
				{ContainerPath: "/var/log/app", HostPath: "/k/log"},
				{ContainerPath: "/etc", HostPath: "/k/etc", Readonly: true},
				{ContainerPath: "/data", HostPath: "/k/data"},
				{ContainerPath: "/etc/app/conf", HostPath: "/k/conf"},
			}
		}, check: mounts(defaults, ms(
			bind("/etc", "/k/etc", "rbind", "rprivate", "ro"),
			bind("/data", "/k/data", "rbind", "rprivate", "rw"),
			mShm, mHostnm, mHosts, mResolv,
			bind("/var/log/app", "/k/log", "rbind", "rprivate", "rw"),
			bind("/etc/app/conf", "/k/conf", "rbind", "rprivate", "rw")))},
		{name: "private propagation leaves rootfs alone", mod: one(&runtime.Mount{ContainerPath: "/m", HostPath: "/k/m"}),
			check: propagation("")},
		{name: "host-to-container is rslave", mod: one(&runtime.Mount{ContainerPath: "/m", HostPath: "/k/m", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}),
			check: func(t *testing.T, s *specs.Spec, u User) {
				mounts(defaults, ms(bind("/m", "/k/m", "rbind", "rslave", "rw")), podFiles)(t, s, u)
				propagation("rslave")(t, s, u)
			}},
		{name: "bidirectional is rshared", mod: one(&runtime.Mount{ContainerPath: "/m", HostPath: "/k/m", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}),
			check: func(t *testing.T, s *specs.Spec, u User) {
				mounts(defaults, ms(bind("/m", "/k/m", "rbind", "rshared", "rw")), podFiles)(t, s, u)
				propagation("rshared")(t, s, u)
			}},
		{name: "shared wins over slave", mod: func(in *SpecInput) {
			in.Config.Mounts = []*runtime.Mount{
				{ContainerPath: "/a", HostPath: "/k/a", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
				{ContainerPath: "/b", HostPath: "/k/b", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			}
		}, check: propagation("rshared")},
		{name: "unknown propagation", mod: one(&runtime.Mount{ContainerPath: "/m", HostPath: "/k/m", Propagation: 5}),
			code: codes.InvalidArgument, field: "config.mounts[0].propagation"},
		{name: "recursive read-only", mod: one(&runtime.Mount{ContainerPath: "/mnt", HostPath: "/k/m", Readonly: true, RecursiveReadOnly: true}),
			check: mounts(defaults, ms(bind("/mnt", "/k/m", "rbind", "rprivate", "ro", "rro")), podFiles)},
		{name: "recursive read-only needs readonly", mod: one(&runtime.Mount{ContainerPath: "/mnt", HostPath: "/k/m", RecursiveReadOnly: true}),
			code: codes.InvalidArgument, field: "config.mounts[0].recursive_read_only"},
		{name: "recursive read-only rejects host-to-container", mod: one(&runtime.Mount{ContainerPath: "/mnt", HostPath: "/k/m", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}),
			code: codes.InvalidArgument, field: "config.mounts[0].recursive_read_only"},
		{name: "recursive read-only rejects bidirectional", mod: one(&runtime.Mount{ContainerPath: "/mnt", HostPath: "/k/m", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}),
			code: codes.InvalidArgument, field: "config.mounts[0].recursive_read_only"},
		{name: "relative container path", mod: func(in *SpecInput) {
			in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/ok", HostPath: "/k/ok"}, {ContainerPath: "data", HostPath: "/k/d"}}
		}, code: codes.InvalidArgument, field: "config.mounts[1].container_path"},
		{name: "relative host path", mod: one(&runtime.Mount{ContainerPath: "/d", HostPath: "k/d"}),
			code: codes.InvalidArgument, field: "config.mounts[0].host_path"},
		{name: "missing host path", mod: one(&runtime.Mount{ContainerPath: "/d"}),
			code: codes.InvalidArgument, field: "config.mounts[0].host_path"},
		{name: "mount options", mod: one(&runtime.Mount{ContainerPath: "/d", HostPath: "/k/d", MountOptions: []string{"noexec", "nosuid", "rnodev"}}),
			check: mounts(defaults, ms(bind("/d", "/k/d", "rbind", "rprivate", "rw", "noexec", "nosuid", "rnodev")), podFiles)},
		{name: "own user namespace, host network: the host's /sys bound", mod: usernsNet(true),
			check: mounts(ms(mProc, mDev, mPts, mMqueue, bind("/sys", "/sys", "rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"), mCgroup), podFiles)},
		{name: "own user namespace, pod network: a sysfs", mod: usernsNet(false), check: mounts(defaults, podFiles)},
		{name: "host network, host user namespace: a sysfs", mod: func(in *SpecInput) { delete(in.Sandbox.Namespaces, "net") }, check: mounts(defaults, podFiles)},
		{name: "mount option that loosens", mod: one(&runtime.Mount{ContainerPath: "/d", HostPath: "/k/d", Readonly: true, MountOptions: []string{"noexec", "rw"}}),
			code: codes.InvalidArgument, field: "config.mounts[0].mount_options[1]"},
		{name: "idmapped mount without gid mappings", mod: one(&runtime.Mount{ContainerPath: "/d", HostPath: "/k/d", UidMappings: []*runtime.IDMapping{{HostId: 1000, Length: 10}}}),
			code: codes.InvalidArgument, field: "config.mounts[0]"},
	})
}

func TestSpecImageVolumes(t *testing.T) {
	image := &runtime.ImageSpec{Image: "sha256:feed"}
	vol := func(in *SpecInput, m *runtime.Mount) {
		in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/host", HostPath: "/k/host"}, m}
		in.ImageVolumes = map[int]string{1: "/run/husk/imagevols/feed"}
	}
	last := func(want specs.Mount) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "image mount", s.Mounts[len(s.Mounts)-1], want) }
	}
	runSpecCases(t, []specCase{
		{name: "whole image", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true})
		}, check: last(bind("/vol/img", "/run/husk/imagevols/feed", "rbind", "rprivate", "ro", "nosuid", "nodev"))},
		// huskd mounted what the sub path resolved to at the volume's path:
		// the spec never joins the sub path again.
		{name: "sub path", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true, ImageSubPath: "etc/ssl"})
		}, check: last(bind("/vol/img", "/run/husk/imagevols/feed", "rbind", "rprivate", "ro", "nosuid", "nodev"))},
		{name: "host path is ignored", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", HostPath: "/etc", Image: image, Readonly: true})
		}, check: last(bind("/vol/img", "/run/husk/imagevols/feed", "rbind", "rprivate", "ro", "nosuid", "nodev"))},
		{name: "writable image volume", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image})
		}, code: codes.InvalidArgument, field: "config.mounts[1].readonly"},
		{name: "sub path climbing out", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true, ImageSubPath: "etc/../../x"})
		}, code: codes.InvalidArgument, field: "config.mounts[1].image_sub_path"},
		{name: "absolute sub path", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true, ImageSubPath: "/etc"})
		}, code: codes.InvalidArgument, field: "config.mounts[1].image_sub_path"},
		{name: "sub path of \"..\" alone", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true, ImageSubPath: ".."})
		}, code: codes.InvalidArgument, field: "config.mounts[1].image_sub_path"},
		{name: "sub path with a NUL byte", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true, ImageSubPath: "etc\x00"})
		}, code: codes.InvalidArgument, field: "config.mounts[1].image_sub_path"},
		{name: "sub path without image", mod: func(in *SpecInput) {
			in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/d", HostPath: "/k/d", ImageSubPath: "etc"}}
		}, code: codes.InvalidArgument, field: "config.mounts[0].image_sub_path"},
		{name: "image not mounted", mod: func(in *SpecInput) {
			vol(in, &runtime.Mount{ContainerPath: "/vol/img", Image: image, Readonly: true})
			in.ImageVolumes = nil
		}, code: codes.FailedPrecondition, field: "config.mounts[1].image"},
	})
}

func TestSpecCapabilities(t *testing.T) {
	caps := func(want []string, ambient ...string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) {
			var amb []string
			if len(ambient) > 0 {
				amb = ambient
			}
			eq(t, "capabilities", s.Process.Capabilities, &specs.LinuxCapabilities{
				Bounding: want, Effective: want, Permitted: want, Inheritable: amb, Ambient: amb,
			})
		}
	}
	set := func(add, drop []string) func(*SpecInput) {
		return func(in *SpecInput) {
			secCtx(in).Capabilities = &runtime.Capability{AddCapabilities: add, DropCapabilities: drop}
		}
	}
	// containerd's default set, in kernel order.
	def := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD",
		"CAP_AUDIT_WRITE", "CAP_SETFCAP"}
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	if len(allCapabilities) != 41 || allCapabilities[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Fatalf("allCapabilities has %d entries", len(allCapabilities))
	}
	runSpecCases(t, []specCase{
		{name: "default", check: caps(def)},
		{name: "add without prefix", mod: set([]string{"NET_ADMIN"}, nil),
			check: caps(slices.Insert(slices.Clone(def), 9, "CAP_NET_ADMIN"))},
		{name: "add with prefix, any case", mod: set([]string{"cap_sys_admin", "Sys_Time"}, nil),
			check: caps([]string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
				"CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_SYS_ADMIN",
				"CAP_SYS_TIME", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"})},
		{name: "drop", mod: set(nil, []string{"NET_RAW", "CAP_chown"}), check: caps(without(def, "CAP_NET_RAW", "CAP_CHOWN"))},
		{name: "add ALL", mod: set([]string{"ALL"}, nil), check: caps(allCapabilities)},
		{name: "drop ALL", mod: set(nil, []string{"all"}), check: caps(nil)},
		{name: "add ALL, drop one", mod: set([]string{"ALL"}, []string{"CHOWN"}), check: caps(allCapabilities[1:])},
		{name: "drop ALL, add one", mod: set([]string{"NET_ADMIN"}, []string{"ALL"}), check: caps([]string{"CAP_NET_ADMIN"})},
		{name: "add ALL and drop ALL", mod: set([]string{"ALL"}, []string{"ALL"}), check: caps(nil)},
		{name: "add and drop the same: drop wins", mod: set([]string{"NET_ADMIN"}, []string{"NET_ADMIN"}), check: caps(def)},
		{name: "unknown add", mod: set([]string{"NET_ADMIN", "FLY"}, nil),
			code: codes.InvalidArgument, field: "config.linux.security_context.capabilities.add_capabilities[1]"},
		{name: "unknown drop", mod: set(nil, []string{"CAP_"}),
			code: codes.InvalidArgument, field: "config.linux.security_context.capabilities.drop_capabilities[0]"},
		{name: "privileged has all, whatever is dropped", mod: func(in *SpecInput) {
			set(nil, []string{"ALL"})(in)
			secCtx(in).Privileged = true
		}, check: caps(allCapabilities)},
		{name: "ambient joins every set", mod: func(in *SpecInput) {
			secCtx(in).Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}, AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}}
		}, check: caps([]string{"CAP_NET_BIND_SERVICE"}, "CAP_NET_BIND_SERVICE")},
		{name: "unknown ambient", mod: func(in *SpecInput) {
			secCtx(in).Capabilities = &runtime.Capability{AddAmbientCapabilities: []string{"NOPE"}}
		}, code: codes.InvalidArgument, field: "config.linux.security_context.capabilities.add_ambient_capabilities[0]"},
	})
}

// allows says whether f allows name unconditionally.
func allows(f *specs.LinuxSeccomp, name string) bool {
	for _, s := range f.Syscalls {
		if s.Action == specs.ActAllow && len(s.Args) == 0 && slices.Contains(s.Names, name) {
			return true
		}
	}
	return false
}

func TestSpecSeccomp(t *testing.T) {
	profile := func(typ runtime.SecurityProfile_ProfileType, ref string) func(*SpecInput) {
		return func(in *SpecInput) {
			secCtx(in).Seccomp = &runtime.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
		}
	}
	path := func(p string) func(*SpecInput) {
		return func(in *SpecInput) { secCtx(in).SeccompProfilePath = p }
	}
	none := func(t *testing.T, s *specs.Spec, _ User) {
		eq(t, "seccomp", s.Linux.Seccomp, (*specs.LinuxSeccomp)(nil))
	}
	runtimeDefault := func(t *testing.T, s *specs.Spec, _ User) {
		f := s.Linux.Seccomp
		if f == nil || f.DefaultAction != specs.ActErrno || !allows(f, "read") {
			t.Fatalf("not the default profile: %+v", f)
		}
		if allows(f, "sethostname") {
			t.Error("default profile allows sethostname without CAP_SYS_ADMIN")
		}
	}
	blockChmod := func(t *testing.T, s *specs.Spec, _ User) {
		f := s.Linux.Seccomp
		if f == nil || f.DefaultAction != specs.ActAllow || len(f.Syscalls) != 1 ||
			!reflect.DeepEqual(f.Syscalls[0].Names, []string{"chmod", "fchmodat"}) || f.Syscalls[0].Action != specs.ActErrno {
			t.Fatalf("not the block-chmod profile: %+v", f)
		}
	}
	audit := func(t *testing.T, s *specs.Spec, _ User) {
		if f := s.Linux.Seccomp; f == nil || f.DefaultAction != specs.ActLog {
			t.Fatalf("not the audit profile: %+v", f)
		}
	}
	const scField = "config.linux.security_context.seccomp"
	runSpecCases(t, []specCase{
		{name: "no seccomp field: unconfined", check: none},
		{name: "zero profile is RuntimeDefault", mod: func(in *SpecInput) { secCtx(in).Seccomp = &runtime.SecurityProfile{} }, check: runtimeDefault},
		{name: "default profile follows capabilities", mod: func(in *SpecInput) {
			profile(runtime.SecurityProfile_RuntimeDefault, "")(in)
			secCtx(in).Capabilities = &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			if !allows(s.Linux.Seccomp, "sethostname") {
				t.Error("default profile with CAP_SYS_ADMIN does not allow sethostname")
			}
		}},
		{name: "unconfined", mod: profile(runtime.SecurityProfile_Unconfined, ""), check: none},
		{name: "localhost absolute", mod: profile(runtime.SecurityProfile_Localhost, "/etc/husk/block-chmod.json"), check: blockChmod},
		{name: "localhost relative to the profile root", mod: profile(runtime.SecurityProfile_Localhost, "profiles/audit.json"), check: audit},
		{name: "localhost with a localhost/ prefix", mod: profile(runtime.SecurityProfile_Localhost, "localhost//etc/husk/block-chmod.json"), check: blockChmod},
		{name: "empty profile file is unconfined", mod: profile(runtime.SecurityProfile_Localhost, "profiles/missing-ok.js"), check: none},
		{name: "relative without a profile root", mod: func(in *SpecInput) {
			profile(runtime.SecurityProfile_Localhost, "profiles/audit.json")(in)
			in.Node.SeccompProfileRoot = ""
		}, code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "missing file", mod: profile(runtime.SecurityProfile_Localhost, "/etc/husk/nope.json"),
			code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "bad JSON", mod: profile(runtime.SecurityProfile_Localhost, "/etc/husk/broken.json"),
			code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "invalid profile", mod: profile(runtime.SecurityProfile_Localhost, "/etc/husk/both-name-and-names.json"),
			code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "localhost without a ref", mod: profile(runtime.SecurityProfile_Localhost, ""),
			code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "ref without localhost", mod: profile(runtime.SecurityProfile_RuntimeDefault, "/etc/husk/block-chmod.json"),
			code: codes.InvalidArgument, field: scField + ".localhost_ref"},
		{name: "unknown type", mod: profile(9, ""), code: codes.InvalidArgument, field: scField + ".profile_type"},
		{name: "privileged is never filtered", mod: func(in *SpecInput) {
			profile(runtime.SecurityProfile_Localhost, "/etc/husk/nope.json")(in)
			secCtx(in).Privileged = true
		}, check: none},
		{name: "deprecated runtime/default", mod: path("runtime/default"), check: runtimeDefault},
		{name: "deprecated docker/default", mod: path("docker/default"), check: runtimeDefault},
		{name: "deprecated unconfined", mod: path("unconfined"), check: none},
		{name: "deprecated localhost", mod: path("localhost//etc/husk/block-chmod.json"), check: blockChmod},
		{name: "deprecated localhost, missing file", mod: path("localhost//etc/husk/nope.json"),
			code: codes.InvalidArgument, field: "config.linux.security_context.seccomp_profile_path"},
		{name: "deprecated nonsense", mod: path("strict"),
			code: codes.InvalidArgument, field: "config.linux.security_context.seccomp_profile_path"},
		{name: "deprecated bare localhost/", mod: path("localhost/"),
			code: codes.InvalidArgument, field: "config.linux.security_context.seccomp_profile_path"},
		{name: "the field wins over the deprecated one", mod: func(in *SpecInput) {
			path("localhost//etc/husk/nope.json")(in)
			profile(runtime.SecurityProfile_Unconfined, "")(in)
		}, check: none},
	})

	t.Run("privileged reads no profile", func(t *testing.T) {
		in := baseInput()
		profile(runtime.SecurityProfile_Localhost, "/etc/husk/block-chmod.json")(&in)
		secCtx(&in).Privileged = true
		in.ReadFile = func(p string) ([]byte, error) {
			t.Errorf("read %s", p)
			return nil, errors.New("no")
		}
		if _, _, err := Spec(in); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSpecAppArmor(t *testing.T) {
	profile := func(typ runtime.SecurityProfile_ProfileType, ref string) func(*SpecInput) {
		return func(in *SpecInput) {
			secCtx(in).Apparmor = &runtime.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
		}
	}
	enabled := func(mod func(*SpecInput)) func(*SpecInput) {
		return func(in *SpecInput) {
			in.Node.AppArmor = true
			mod(in)
		}
	}
	name := func(want string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "apparmor profile", s.Process.ApparmorProfile, want) }
	}
	runSpecCases(t, []specCase{
		{name: "none", check: name("")},
		{name: "disabled: runtime default accepted", mod: profile(runtime.SecurityProfile_RuntimeDefault, ""), check: name("")},
		{name: "disabled: unconfined accepted", mod: profile(runtime.SecurityProfile_Unconfined, ""), check: name("")},
		{name: "disabled: localhost refused", mod: profile(runtime.SecurityProfile_Localhost, "my-profile"),
			code: codes.FailedPrecondition, field: "config.linux.security_context.apparmor"},
		{name: "disabled: deprecated localhost refused", mod: func(in *SpecInput) { secCtx(in).ApparmorProfile = "localhost/my-profile" },
			code: codes.FailedPrecondition, field: "config.linux.security_context.apparmor_profile"},
		{name: "disabled: deprecated runtime/default accepted", mod: func(in *SpecInput) { secCtx(in).ApparmorProfile = "runtime/default" }, check: name("")},
		{name: "enabled: localhost", mod: enabled(profile(runtime.SecurityProfile_Localhost, "my-profile")), check: name("my-profile")},
		{name: "enabled: unset means the default profile", mod: enabled(func(*SpecInput) {}), check: name("husk-default")},
		{name: "enabled: runtime default is husk's profile", mod: enabled(profile(runtime.SecurityProfile_RuntimeDefault, "")), check: name("husk-default")},
		{name: "enabled: deprecated runtime/default", mod: enabled(func(in *SpecInput) { secCtx(in).ApparmorProfile = "runtime/default" }), check: name("husk-default")},
		{name: "enabled: unconfined", mod: enabled(profile(runtime.SecurityProfile_Unconfined, "")), check: name("")},
		{name: "enabled: deprecated unconfined", mod: enabled(func(in *SpecInput) { secCtx(in).ApparmorProfile = "unconfined" }), check: name("")},
		{name: "enabled: privileged is not confined", mod: enabled(func(in *SpecInput) { secCtx(in).Privileged = true }), check: name("")},
		{name: "enabled: privileged with runtime default", mod: enabled(func(in *SpecInput) {
			secCtx(in).Privileged = true
			profile(runtime.SecurityProfile_RuntimeDefault, "")(in)
		}), check: name("")},
		{name: "enabled: privileged with a localhost profile", mod: enabled(func(in *SpecInput) {
			secCtx(in).Privileged = true
			profile(runtime.SecurityProfile_Localhost, "my-profile")(in)
		}), check: name("")},
		{name: "enabled: deprecated localhost", mod: enabled(func(in *SpecInput) { secCtx(in).ApparmorProfile = "localhost/deny-write" }), check: name("deny-write")},
		{name: "enabled: the field wins over the deprecated one", mod: enabled(func(in *SpecInput) {
			secCtx(in).ApparmorProfile = "localhost/non-existent"
			profile(runtime.SecurityProfile_Localhost, "deny-write")(in)
		}), check: name("deny-write")},
		{name: "localhost without a ref", mod: enabled(profile(runtime.SecurityProfile_Localhost, "")),
			code: codes.InvalidArgument, field: "config.linux.security_context.apparmor.localhost_ref"},
		{name: "deprecated nonsense", mod: func(in *SpecInput) { secCtx(in).ApparmorProfile = "enforce" },
			code: codes.InvalidArgument, field: "config.linux.security_context.apparmor_profile"},
		{name: "selinux options are ignored", mod: func(in *SpecInput) {
			secCtx(in).SelinuxOptions = &runtime.SELinuxOption{User: "system_u", Type: "container_t", Level: "s0:c1,c2"}
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "selinux label", s.Process.SelinuxLabel, "")
			eq(t, "mount label", s.Linux.MountLabel, "")
		}},
	})
}

func TestSpecMaskedPaths(t *testing.T) {
	paths := func(masked, readonly []string) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "masked", s.Linux.MaskedPaths, masked)
			eq(t, "readonly", s.Linux.ReadonlyPaths, readonly)
		}
	}
	given := func(in *SpecInput) {
		secCtx(in).MaskedPaths = []string{"/proc/kcore", "/bin/ls"}
		secCtx(in).ReadonlyPaths = []string{"/proc/sys", "/tmp"}
	}
	runSpecCases(t, []specCase{
		{name: "none given, none applied", check: paths(nil, nil)},
		{name: "as given", mod: given, check: paths([]string{"/proc/kcore", "/bin/ls"}, []string{"/proc/sys", "/tmp"})},
		{name: "privileged: none", mod: func(in *SpecInput) {
			given(in)
			secCtx(in).Privileged = true
		}, check: paths(nil, nil)},
	})
}

func TestResources(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	v1 := NodeInfo{HugetlbController: true}
	v2 := NodeInfo{CgroupV2: true}
	cases := []struct {
		name  string
		r     *runtime.LinuxContainerResources
		node  NodeInfo
		want  *specs.LinuxResources
		field string
	}{
		{name: "nil", want: &specs.LinuxResources{}},
		{name: "empty", r: &runtime.LinuxContainerResources{}, want: &specs.LinuxResources{}},
		{name: "cpu", r: &runtime.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, CpusetCpus: "0-1", CpusetMems: "0"},
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(100000), Cpus: "0-1", Mems: "0"}}},
		{name: "unlimited quota", r: &runtime.LinuxContainerResources{CpuQuota: -1},
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1)}}},
		{name: "memory and swap (critest OOM)", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 15 << 20, MemorySwapLimitInBytes: 15 << 20},
			want: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(15 << 20), Swap: i64(15 << 20)}}},
		{name: "memory alone", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30},
			want: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}}},
		{name: "oom_score_adj is not a cgroup setting", r: &runtime.LinuxContainerResources{OomScoreAdj: 1000},
			want: &specs.LinuxResources{}},
		{name: "hugepages", node: v1, r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}},
			want: &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}},
		{name: "hugepages ignored without the controller", node: v2, r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}},
			want: &specs.LinuxResources{}},
		{name: "hugepage without size", node: v1, r: &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{Limit: 1}}},
			field: "config.linux.resources.hugepage_limits[0].page_size"},
		{name: "unified on v2", node: v2, r: &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1G"}},
			want: &specs.LinuxResources{Unified: map[string]string{"memory.high": "1G"}}},
		{name: "unified on v1", node: v1, r: &runtime.LinuxContainerResources{Unified: map[string]string{"memory.high": "1G"}},
			field: "config.linux.resources.unified"},
		{name: "negative shares", r: &runtime.LinuxContainerResources{CpuShares: -2}, field: "config.linux.resources.cpu_shares"},
		{name: "negative period", r: &runtime.LinuxContainerResources{CpuPeriod: -2}, field: "config.linux.resources.cpu_period"},
		{name: "quota below -1", r: &runtime.LinuxContainerResources{CpuQuota: -2}, field: "config.linux.resources.cpu_quota"},
		{name: "negative memory", r: &runtime.LinuxContainerResources{MemoryLimitInBytes: -1}, field: "config.linux.resources.memory_limit_in_bytes"},
		{name: "swap below -1", r: &runtime.LinuxContainerResources{MemorySwapLimitInBytes: -2}, field: "config.linux.resources.memory_swap_limit_in_bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Resources(c.r, c.node)
			if c.field != "" {
				if errdefs.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
					t.Fatalf("err %v, want InvalidArgument naming %s", err, c.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "resources", got, c.want)
		})
	}
}

func TestSpecResources(t *testing.T) {
	oom := func(want int) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) { eq(t, "oom_score_adj", s.Process.OOMScoreAdj, &want) }
	}
	runSpecCases(t, []specCase{
		{name: "no resources: 0", check: oom(0)},
		{name: "above the floor", mod: func(in *SpecInput) { resources(in).OomScoreAdj = 1000 }, check: oom(1000)},
		{name: "below the floor is raised", mod: func(in *SpecInput) { resources(in).OomScoreAdj = -1000 }, check: oom(-999)},
		{name: "floor 0", mod: func(in *SpecInput) {
			in.Node.OOMScoreAdjFloor = 0
			resources(in).OomScoreAdj = -998
		}, check: oom(0)},
		{name: "out of range", mod: func(in *SpecInput) { resources(in).OomScoreAdj = 1001 },
			code: codes.InvalidArgument, field: "config.linux.resources.oom_score_adj"},
		{name: "limits land in the spec", mod: func(in *SpecInput) {
			resources(in).CpuShares = 2
			resources(in).MemoryLimitInBytes = 1 << 20
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			shares, limit := uint64(2), int64(1<<20)
			eq(t, "cpu", s.Linux.Resources.CPU, &specs.LinuxCPU{Shares: &shares})
			eq(t, "memory", s.Linux.Resources.Memory, &specs.LinuxMemory{Limit: &limit})
		}},
		{name: "unified on v1", mod: func(in *SpecInput) {
			in.Node.CgroupV2 = false
			resources(in).Unified = map[string]string{"pids.max": "10"}
		}, code: codes.InvalidArgument, field: "config.linux.resources.unified"},
	})
}

func TestSpecDevices(t *testing.T) {
	mode := func(m os.FileMode) *os.FileMode { return &m }
	u32 := func(v uint32) *uint32 { return &v }
	i64 := func(v int64) *int64 { return &v }
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	fuse := specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o666), UID: u32(0), GID: u32(0)}
	devices := func(devs []specs.LinuxDevice, rules ...specs.LinuxDeviceCgroup) func(*testing.T, *specs.Spec, User) {
		return func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "devices", s.Linux.Devices, devs)
			eq(t, "device rules", s.Linux.Resources.Devices, rules)
		}
	}
	dev := func(d ...*runtime.Device) func(*SpecInput) {
		return func(in *SpecInput) { in.Config.Devices = d }
	}
	host := []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: mode(0o666), UID: u32(0), GID: u32(0)},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o600), UID: u32(0), GID: u32(0)},
	}
	runSpecCases(t, []specCase{
		{name: "none: deny all", check: devices(nil, denyAll)},
		{name: "a device", mod: dev(&runtime.Device{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rw"}),
			check: devices([]specs.LinuxDevice{fuse}, denyAll,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rw"})},
		{name: "renamed block device, default permissions", mod: dev(&runtime.Device{HostPath: "/dev/sda", ContainerPath: "/dev/xvda"}),
			check: devices([]specs.LinuxDevice{{Path: "/dev/xvda", Type: "b", Major: 8, Minor: 0, FileMode: mode(0o660), UID: u32(0), GID: u32(6)}}, denyAll,
				specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Minor: i64(0), Access: "rwm"})},
		{name: "container path defaults to the host path", mod: dev(&runtime.Device{HostPath: "/dev/fuse", Permissions: "rwm"}),
			check: devices([]specs.LinuxDevice{fuse}, denyAll,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"})},
		{name: "bad permissions", mod: dev(&runtime.Device{HostPath: "/dev/fuse", Permissions: "rwx"}),
			code: codes.InvalidArgument, field: "config.devices[0].permissions"},
		{name: "repeated permission", mod: dev(&runtime.Device{HostPath: "/dev/fuse", Permissions: "rr"}),
			code: codes.InvalidArgument, field: "config.devices[0].permissions"},
		{name: "missing device", mod: dev(&runtime.Device{HostPath: "/dev/fuse"}, &runtime.Device{HostPath: "/dev/nope"}),
			code: codes.InvalidArgument, field: "config.devices[1].host_path"},
		{name: "not a device", mod: dev(&runtime.Device{HostPath: "/dev/odd"}),
			code: codes.InvalidArgument, field: "config.devices[0].host_path"},
		{name: "relative host path", mod: dev(&runtime.Device{HostPath: "dev/fuse"}),
			code: codes.InvalidArgument, field: "config.devices[0].host_path"},
		{name: "relative container path", mod: dev(&runtime.Device{HostPath: "/dev/fuse", ContainerPath: "fuse"}),
			code: codes.InvalidArgument, field: "config.devices[0].container_path"},
		{name: "privileged: all host devices, all allowed", mod: func(in *SpecInput) {
			secCtx(in).Privileged = true
			in.HostDevices = func() ([]specs.LinuxDevice, error) { return host, nil }
		}, check: devices(host, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})},
		{name: "privileged: the config's device wins", mod: func(in *SpecInput) {
			dev(&runtime.Device{HostPath: "/dev/fuse"})(in)
			secCtx(in).Privileged = true
			in.HostDevices = func() ([]specs.LinuxDevice, error) { return host, nil }
		}, check: devices([]specs.LinuxDevice{fuse, host[0]}, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})},
		{name: "privileged without host devices", mod: func(in *SpecInput) { secCtx(in).Privileged = true },
			check: devices(nil, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})},
		{name: "privileged: listing fails", mod: func(in *SpecInput) {
			secCtx(in).Privileged = true
			in.HostDevices = func() ([]specs.LinuxDevice, error) { return nil, errors.New("boom") }
		}, code: codes.Unknown},
	})
}

func TestSpecRootAndMetadata(t *testing.T) {
	runSpecCases(t, []specCase{
		{name: "defaults", mod: func(in *SpecInput) {
			in.Config.Annotations = map[string]string{"a": "b", annotationContainerType: "sandbox"}
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "version", s.Version, specs.Version)
			eq(t, "root", s.Root, &specs.Root{Path: testRootfs})
			eq(t, "cgroups path", s.Linux.CgroupsPath, "/kubepods/besteffort/pod1/c1")
			eq(t, "annotations", s.Annotations, map[string]string{
				"a":                                "b",
				"io.kubernetes.cri.container-type": "container",
				"io.kubernetes.cri.sandbox-id":     "pod1",
				"io.kubernetes.cri.container-name": "app",
				"io.kubernetes.cri.image-name":     "docker.io/library/busybox:latest",
			})
			eq(t, "terminal", s.Process.Terminal, false)
			eq(t, "no_new_privs", s.Process.NoNewPrivileges, false)
			eq(t, "rlimits", s.Process.Rlimits, []specs.POSIXRlimit(nil))
			eq(t, "hostname", s.Hostname, "")
			eq(t, "hooks", s.Hooks, (*specs.Hooks)(nil))
		}},
		{name: "read-only rootfs, tty, no_new_privs", mod: func(in *SpecInput) {
			secCtx(in).ReadonlyRootfs = true
			secCtx(in).NoNewPrivs = true
			in.Config.Tty = true
		}, check: func(t *testing.T, s *specs.Spec, _ User) {
			eq(t, "root", s.Root, &specs.Root{Path: testRootfs, Readonly: true})
			eq(t, "terminal", s.Process.Terminal, true)
			eq(t, "no_new_privs", s.Process.NoNewPrivileges, true)
		}},
		{name: "no config", mod: func(in *SpecInput) { in.Config = nil }, code: codes.InvalidArgument, field: "config"},
		{name: "no metadata", mod: func(in *SpecInput) { in.Config.Metadata = nil }, code: codes.InvalidArgument, field: "config.metadata"},
		{name: "relative rootfs", mod: func(in *SpecInput) { in.Rootfs = "rootfs" }, code: codes.Unknown},
	})
}

// The specs must be ones runc v1.5.3's specconv accepts: that is what
// husk-runc hands them to.
func TestSpecConvertsWithRunc(t *testing.T) {
	mods := map[string]func(*SpecInput){
		"default": nil,
		"everything": func(in *SpecInput) {
			sc := secCtx(in)
			sc.Seccomp = &runtime.SecurityProfile{}
			sc.Capabilities = &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}}
			sc.ReadonlyRootfs = true
			sc.MaskedPaths = []string{"/proc/kcore"}
			sc.ReadonlyPaths = []string{"/proc/sys"}
			sc.RunAsUser = &runtime.Int64Value{Value: 1000}
			sc.SupplementalGroups = []int64{4}
			in.Config.Mounts = []*runtime.Mount{
				{ContainerPath: "/a", HostPath: "/k/a", Readonly: true, RecursiveReadOnly: true, MountOptions: []string{"noexec", "rnodev"}},
				{ContainerPath: "/b", HostPath: "/k/b", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
				{ContainerPath: "/c", HostPath: "/k/c", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			}
			in.Config.Devices = []*runtime.Device{{HostPath: "/dev/sda", ContainerPath: "/dev/xvda", Permissions: "r"}}
			r := resources(in)
			r.CpuShares, r.CpuQuota, r.CpuPeriod, r.MemoryLimitInBytes, r.MemorySwapLimitInBytes = 256, 20000, 100000, 64<<20, 64<<20
			r.HugepageLimits = []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}}
			r.Unified = map[string]string{"memory.high": "50000000"}
		},
		"privileged": func(in *SpecInput) {
			secCtx(in).Privileged = true
			in.HostDevices = func() ([]specs.LinuxDevice, error) {
				m, u := os.FileMode(0o666), uint32(0)
				return []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &m, UID: &u, GID: &u}}, nil
			}
		},
		"localhost seccomp": func(in *SpecInput) {
			secCtx(in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/etc/husk/block-chmod.json"}
		},
	}
	for name, mod := range mods {
		t.Run(name, func(t *testing.T) {
			in := baseInput()
			if mod != nil {
				mod(&in)
			}
			s, _, err := Spec(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: in.ID, Spec: s})
			if err != nil {
				t.Fatalf("specconv: %v", err)
			}
			if cfg.Rootfs != testRootfs || len(cfg.Mounts) != len(s.Mounts) {
				t.Errorf("converted rootfs %q, %d mounts", cfg.Rootfs, len(cfg.Mounts))
			}
		})
	}
}

func ExampleSpec() {
	in := SpecInput{
		ID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "web"},
			Image:    &runtime.ImageSpec{Image: "docker.io/library/nginx:1.27"},
		},
		Image:   ImageConfig{Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"}, User: "101"},
		Sandbox: SandboxInfo{ID: "pod1", PausePID: 42, Cgroup: "/kubepods/pod1/c1"},
		Rootfs:  "/var/lib/husk/containers/c1/rootfs",
		Users:   ParseUserDB([]byte("nginx:x:101:101::/nonexistent:/bin/false\n"), nil),
	}
	s, u, err := Spec(in)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Process.Args, s.Process.Cwd, u.UID, u.GID, s.Linux.CgroupsPath)
	// Output: [/docker-entrypoint.sh nginx -g daemon off;] / 101 101 /kubepods/pod1/c1
}

// "ALL" and privileged give what the runtime holds, not what it lacks:
// root on this kind of machine has no CAP_SYS_RESOURCE.
func TestCapabilitiesLimitedToTheNode(t *testing.T) {
	node := CapabilitiesFromMask(0x000001fffeffffff)
	if slices.Contains(node, "CAP_SYS_RESOURCE") || !slices.Contains(node, "CAP_SYS_ADMIN") || len(node) != 40 {
		t.Fatalf("CapabilitiesFromMask: %v", node)
	}
	for name, sc := range map[string]*runtime.LinuxContainerSecurityContext{
		"add ALL":    {Capabilities: &runtime.Capability{AddCapabilities: []string{"ALL"}}},
		"privileged": {Privileged: true},
	} {
		caps, err := capabilities(sc, NodeInfo{Capabilities: node})
		if err != nil || slices.Contains(caps.Bounding, "CAP_SYS_RESOURCE") || len(caps.Bounding) != 40 {
			t.Errorf("%s: %v, %v", name, caps, err)
		}
	}
	_, err := capabilities(&runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"SYS_RESOURCE"}}}, NodeInfo{Capabilities: node})
	if errdefs.Code(err) != codes.FailedPrecondition {
		t.Errorf("an explicit capability the node lacks: %v, want FailedPrecondition", err)
	}
}
