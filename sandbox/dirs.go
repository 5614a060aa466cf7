package sandbox

import (
	"errors"
	"os"
	"syscall"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// A pod's directories keep every other host user out: one who could reach
// a container's rootfs could run the setuid binaries and open the device
// nodes the container left there, read its files and write into its
// /dev/shm (the class of containerd's CVE-2021-41103 and CVE-2024-25621).
// The pod's root directory and everything in it is 0700: containers get
// its files as bind mounts, whose sources runc opens on the host's side
// when a container's init cannot reach them. The state directory holds
// the containers' bundles, and a container's init resolves its rootfs
// path itself, as the container's root: in a pod with its own user
// namespace that is the host ID the pod's root maps to, so the state
// directory and the directories on the way to a rootfs are 0710, group
// the host GID of the pod's root (only the pod's mapped IDs pass, and
// cannot list or write); in any other pod they are 0700. (containerd's
// bundles are the same: 0700, or 0710 with the remapped root's group.)

// PodDirGID is the group that may pass through the pod's state directory
// on the way to its containers' rootfs: the host GID that container GID
// 0 maps to, for a pod with its own user namespace; -1 for any other pod.
func PodDirGID(cfg *runtime.PodSandboxConfig) int {
	o := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if !UserNS(o) {
		return -1
	}
	for _, m := range o.GetUsernsOptions().GetGids() {
		if m.GetContainerId() == 0 && m.GetLength() > 0 {
			return int(m.GetHostId())
		}
	}
	// Validation requires GID 0 mapped; without it nothing of the pod's
	// may pass.
	return -1
}

// MkdirPod makes dir, the pod's state directory or one on the way from
// it to a container's rootfs, unless it exists, and gives it the group
// and mode that let only root and the pod's own mapped IDs through (see
// PodDirGID). On error, a dir it made is removed.
func MkdirPod(sb *Sandbox, dir string) error {
	err := os.Mkdir(dir, 0o700)
	made := err == nil
	if err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if _, err := securePodDir(sb.Config, dir); err != nil {
		if made {
			os.Remove(dir)
		}
		return err
	}
	return nil
}

// securePodDir gives an existing dir MkdirPod's group and mode, and says
// whether it had others: a directory an older huskd made 0711 is
// tightened.
func securePodDir(cfg *runtime.PodSandboxConfig, dir string) (bool, error) {
	if g := PodDirGID(cfg); g >= 0 {
		return setMode(dir, g, 0o710)
	}
	return setMode(dir, 0, 0o700)
}

// setMode gives dir the group gid and the mode mode (set explicitly: the
// umask could take the group's bit from a Mkdir), and says whether it
// had other ones.
func setMode(dir string, gid int, mode os.FileMode) (changed bool, err error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return false, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Gid) != gid {
		if err := os.Lchown(dir, -1, gid); err != nil {
			return false, err
		}
		changed = true
	}
	if os.FileMode(st.Mode&0o7777) != mode {
		if err := os.Chmod(dir, mode); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// securePodDirs tightens the root and state directories of a pod that an
// older huskd made 0711. A state directory that is gone (a reboot
// emptied the state) is no error.
func (m *Manager) securePodDirs(sb *Sandbox) {
	for _, d := range []struct {
		path string
		set  func(string) (bool, error)
	}{
		{m.rootDir(sb.ID), func(p string) (bool, error) { return setMode(p, 0, 0o700) }},
		{m.stateDir(sb.ID), func(p string) (bool, error) { return securePodDir(sb.Config, p) }},
	} {
		changed, err := d.set(d.path)
		switch {
		case err != nil && !errors.Is(err, os.ErrNotExist):
			klog.ErrorS(err, "Tightening the mode of a pod's directory", "podSandboxID", sb.ID, "path", d.path)
		case changed:
			klog.InfoS("Tightened the mode of a pod's directory an older huskd left open", "podSandboxID", sb.ID, "path", d.path)
		}
	}
}
