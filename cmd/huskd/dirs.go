package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"
)

// A host user who reaches a container's rootfs or writable layer can run
// the setuid binaries and open the device nodes the container left there,
// read its files and write into its pod's /dev/shm (the class of
// containerd's CVE-2021-41103 and CVE-2024-25621; an image's setuid
// binaries in the layer store likewise). So huskd's directories let only
// root in, except where the pause or a container's init of a pod in its
// own user namespace must pass as the pod's mapped root: there they are
// 0711 (passable, never listable), and the pod's own directory below lets
// only the pod's mapped IDs through (sandbox.MkdirPod).

// dirMode is a directory huskd makes at start and the mode it must have.
type dirMode struct {
	path string
	mode os.FileMode
}

// dirModes are huskd's directories under root and state, parents first.
func dirModes(root, state string) []dirMode {
	return []dirMode{
		// Passable: a pod in its own user namespace starts its pause from
		// <root>/pause/rootfs as the pod's mapped root.
		{root, 0o711},
		{filepath.Join(root, "pause"), 0o711},
		// The pods' records and files (hostname, hosts, resolv.conf):
		// containers get the files as bind mounts, whose sources runc
		// opens on the host's side when a container's init cannot reach
		// them.
		{filepath.Join(root, "pods"), 0o700},
		// Writable layers: overlayfs reaches them, and the image layers
		// below, with the credentials of huskd, which mounts it.
		{filepath.Join(root, "containers"), 0o700},
		{filepath.Join(root, "images"), 0o700},
		{filepath.Join(root, "images", "layers"), 0o700},
		// libcni's cache of the pods' attachments and host-local's leases:
		// for huskd and the plugins it runs as root.
		{filepath.Join(root, "cni"), 0o700},
		// Passable: a container's init in a pod with its own user
		// namespace resolves its rootfs under <state>/pods/<pod>/ as the
		// pod's mapped root.
		{state, 0o711},
		{filepath.Join(state, "pods"), 0o711},
	}
}

// makeDirs makes huskd's directories with their modes, and gives these
// modes to those that exist: the huskd before this one left most of them
// 0711 or 0755, and an admin may have made the roots with others. The
// pods' own directories are tightened by the sandbox recovery, which
// knows which pods have their own user namespace.
func makeDirs(root, state string) error {
	for _, d := range dirModes(root, state) {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return err
		}
		fi, err := os.Stat(d.path)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() == d.mode && fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) == 0 {
			continue
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		klog.InfoS("Changed the mode of a directory", "path", d.path,
			"from", fmt.Sprintf("%04o", fi.Mode().Perm()), "to", fmt.Sprintf("%04o", d.mode))
	}
	return nil
}
