package sandbox

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodNamespaces(t *testing.T) {
	const (
		pod  = runtime.NamespaceMode_POD
		ctr  = runtime.NamespaceMode_CONTAINER
		node = runtime.NamespaceMode_NODE
		tgt  = runtime.NamespaceMode_TARGET
	)
	cases := []struct {
		name    string
		opts    *runtime.NamespaceOption
		pin     []string
		wantPID bool
	}{
		{"nil options are all POD", nil, []string{NSNet, NSUTS, NSIPC}, true},
		{"all POD", &runtime.NamespaceOption{Network: pod, Pid: pod, Ipc: pod}, []string{NSNet, NSUTS, NSIPC}, true},
		{"host network takes the host UTS too", &runtime.NamespaceOption{Network: node}, []string{NSIPC}, true},
		{"host IPC", &runtime.NamespaceOption{Ipc: node}, []string{NSNet, NSUTS}, true},
		{"host PID", &runtime.NamespaceOption{Pid: node}, []string{NSNet, NSUTS, NSIPC}, false},
		{"pid CONTAINER still gives the pause its own", &runtime.NamespaceOption{Pid: ctr}, []string{NSNet, NSUTS, NSIPC}, true},
		{"pid TARGET still gives the pause its own", &runtime.NamespaceOption{Pid: tgt, TargetId: "x"}, []string{NSNet, NSUTS, NSIPC}, true},
		{"all host", &runtime.NamespaceOption{Network: node, Pid: node, Ipc: node}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := podNamespaces(c.opts)
			if !reflect.DeepEqual(p.Own, c.pin) || p.NewPID != c.wantPID || !p.PinFirst || p.UserNS {
				t.Errorf("podNamespaces = %+v; want own %v, new PID %v, pinned first", p, c.pin, c.wantPID)
			}
		})
	}
}

func TestPodNamespacesWithUserNS(t *testing.T) {
	m := []*runtime.IDMapping{{HostId: 100000, Length: 65536}}
	o := &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}
	p := podNamespaces(o)
	if !p.UserNS || p.PinFirst || !reflect.DeepEqual(p.Own, []string{NSNet, NSUTS, NSIPC}) {
		t.Errorf("podNamespaces = %+v", p)
	}
	cfg := &runtime.PodSandboxConfig{Hostname: "h", Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: o}}}
	s := pauseSpec(pauseSpecInput{Config: cfg, NewPID: true, UserNS: true, Own: p.Own})
	var types []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joined by path in a user namespace pod", n.Type)
		}
		types = append(types, n.Type)
	}
	want := []specs.LinuxNamespaceType{specs.MountNamespace, specs.UserNamespace, specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace}
	if !reflect.DeepEqual(types, want) || s.Hostname != "h" {
		t.Errorf("namespaces %v hostname %q", types, s.Hostname)
	}
	if len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != 100000 || s.Linux.GIDMappings[0].Size != 65536 {
		t.Errorf("mappings %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	// libcontainer's init refuses to set up a user namespace without a
	// procfs in the container.
	if len(s.Mounts) == 0 || s.Mounts[0].Destination != "/proc" || len(s.Linux.MaskedPaths) == 0 {
		t.Errorf("mounts %+v, masked %v: a user namespace pod's pause needs /proc", s.Mounts, s.Linux.MaskedPaths)
	}
	// Absent options are the host's user namespace.
	if UserNS(&runtime.NamespaceOption{}) || UserNS(nil) {
		t.Error("no userns_options means the host's user namespace")
	}
}

func TestPauseSpec(t *testing.T) {
	base := func() *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
			Linux:    &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{}},
		}
	}
	pinned := map[string]string{NSNet: "/s/ns/net", NSIPC: "/s/ns/ipc", NSUTS: "/s/ns/uts"}
	cases := []struct {
		name  string
		cfg   func(*runtime.PodSandboxConfig)
		in    func(*pauseSpecInput)
		check func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "defaults: nobody, no capabilities, read-only, no new privileges",
			check: func(t *testing.T, s *specs.Spec) {
				if u := s.Process.User; u.UID != 65535 || u.GID != 65535 || len(u.AdditionalGids) != 0 {
					t.Errorf("user = %+v", u)
				}
				c := s.Process.Capabilities
				if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
					t.Errorf("capabilities = %+v, want none", c)
				}
				if !s.Root.Readonly || !s.Process.NoNewPrivileges || s.Process.Args[0] != PauseBinary {
					t.Errorf("root %+v, no_new_privileges %v, args %v", s.Root, s.Process.NoNewPrivileges, s.Process.Args)
				}
				if len(s.Mounts) != 1 || s.Mounts[0].Destination != "/dev" || len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
					t.Errorf("mounts %+v, masked %v, read-only %v: want /dev alone", s.Mounts, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
		{
			name: "run_as_user, run_as_group and supplemental groups",
			cfg: func(c *runtime.PodSandboxConfig) {
				c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
				c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 2000}
				c.Linux.SecurityContext.SupplementalGroups = []int64{3000, 3001}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if u := s.Process.User; u.UID != 1000 || u.GID != 2000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{3000, 3001}) {
					t.Errorf("user = %+v", u)
				}
			},
		},
		{
			name: "run_as_user 0 is root, not the default",
			cfg:  func(c *runtime.PodSandboxConfig) { c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 0} },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.User.UID != 0 {
					t.Errorf("uid = %d, want 0", s.Process.User.UID)
				}
			},
		},
		{
			name: "oom_score_adj is kubelet's -998 when allowed",
			in:   func(in *pauseSpecInput) { in.OOMScoreAdjFloor = -999 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -998 {
					t.Errorf("oom_score_adj = %d, want -998", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "oom_score_adj never below our own",
			in:   func(in *pauseSpecInput) { in.OOMScoreAdjFloor = 0 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != 0 {
					t.Errorf("oom_score_adj = %d, want 0 (the floor)", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "pinned namespaces are joined by path, pid and mount are new",
			check: func(t *testing.T, s *specs.Spec) {
				want := []specs.LinuxNamespace{
					{Type: specs.MountNamespace}, {Type: specs.PIDNamespace},
					{Type: specs.NetworkNamespace, Path: "/s/ns/net"},
					{Type: specs.IPCNamespace, Path: "/s/ns/ipc"},
					{Type: specs.UTSNamespace, Path: "/s/ns/uts"},
				}
				if !reflect.DeepEqual(s.Linux.Namespaces, want) {
					t.Errorf("namespaces = %+v\nwant %+v", s.Linux.Namespaces, want)
				}
			},
		},
		{
			name: "host namespaces are absent",
			in:   func(in *pauseSpecInput) { in.Pinned, in.NewPID = nil, false },
			check: func(t *testing.T, s *specs.Spec) {
				if !reflect.DeepEqual(s.Linux.Namespaces, []specs.LinuxNamespace{{Type: specs.MountNamespace}}) {
					t.Errorf("namespaces = %+v, want only a mount namespace", s.Linux.Namespaces)
				}
			},
		},
		{
			name: "sysctls and cgroup path",
			cfg:  func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || s.Linux.CgroupsPath != "/kubepods/pod1/abc" {
					t.Errorf("sysctl %v cgroups path %q", s.Linux.Sysctl, s.Linux.CgroupsPath)
				}
				// libcontainer writes sysctls through /proc/sys.
				if len(s.Mounts) != 2 || s.Mounts[0].Destination != "/proc" || len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
					t.Errorf("mounts %+v, masked %v, read-only %v: want /proc, masked", s.Mounts, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			if c.cfg != nil {
				c.cfg(cfg)
			}
			in := pauseSpecInput{Config: cfg, Rootfs: "/r", CgroupPath: "/kubepods/pod1/abc", Pinned: pinned, NewPID: true}
			if c.in != nil {
				c.in(&in)
			}
			c.check(t, pauseSpec(in))
		})
	}
}
