package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func usernsConfig(u *runtime.UserNamespace) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: u},
	}}}
}

func TestPodDirGID(t *testing.T) {
	m := func(ctr, host, n uint32) *runtime.IDMapping {
		return &runtime.IDMapping{ContainerId: ctr, HostId: host, Length: n}
	}
	cases := []struct {
		name string
		cfg  *runtime.PodSandboxConfig
		want int
	}{
		{"no config", nil, -1},
		{"the host's user namespace (no options)", usernsConfig(nil), -1},
		{"the host's user namespace", usernsConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}), -1},
		{"its own: the GID root maps to", usernsConfig(&runtime.UserNamespace{
			Uids: []*runtime.IDMapping{m(0, 100000, 65536)}, Gids: []*runtime.IDMapping{m(0, 200000, 65536)},
		}), 200000},
		{"its own, root's GID in a later mapping", usernsConfig(&runtime.UserNamespace{
			Gids: []*runtime.IDMapping{m(1, 300001, 10), m(0, 300000, 1)},
		}), 300000},
		{"its own, GID 0 unmapped: nobody passes", usernsConfig(&runtime.UserNamespace{
			Gids: []*runtime.IDMapping{m(1, 300001, 10)},
		}), -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := PodDirGID(c.cfg); got != c.want {
				t.Errorf("PodDirGID = %d, want %d", got, c.want)
			}
		})
	}
}

// MkdirPod and the recovery's tightening give a pod's directory 0700, or
// 0710 with the mapped root's group, also over what an older huskd made.
func TestMkdirPod(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory another group needs root")
	}
	own := usernsConfig(&runtime.UserNamespace{Gids: []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}})
	for _, c := range []struct {
		name      string
		cfg       *runtime.PodSandboxConfig
		mode      os.FileMode
		gid       uint32
		preexists bool
	}{
		{"pod", usernsConfig(nil), 0o700, 0, false},
		{"pod in its own user namespace", own, 0o710, 100000, false},
		{"pod, made 0711 by an older huskd", usernsConfig(nil), 0o700, 0, true},
		{"pod in its own user namespace, made 0711 by an older huskd", own, 0o710, 100000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pod")
			if c.preexists {
				if err := os.Mkdir(dir, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			if err := MkdirPod(&Sandbox{Config: c.cfg}, dir); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != c.mode || st.Gid != c.gid || st.Uid != 0 {
				t.Errorf("mode %v owner %d:%d, want %v 0:%d", fi.Mode().Perm(), st.Uid, st.Gid, c.mode, c.gid)
			}
		})
	}
}

// TestStateDirs: the pods' state directories on disk, known or not, and
// nothing else, so that the container manager need not know the layout.
func TestStateDirs(t *testing.T) {
	state := t.TempDir()
	m := &Manager{cfg: Config{State: state}}
	if got := m.StateDirs(); len(got) != 0 {
		t.Fatalf("no pods directory: %v", got)
	}
	for _, id := range []string{"a", "b"} {
		if err := os.MkdirAll(m.StateDir(id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(state, "pods", "not-a-dir"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got := m.StateDirs()
	want := []string{m.StateDir("a"), m.StateDir("b")}
	if !slices.Equal(got, want) {
		t.Errorf("StateDirs() = %v, want %v", got, want)
	}
}
