package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/undo"
	"github.com/huskrt/husk/sandbox"
)

// makeContainerDirs makes the container's directory dir (its writable layer) and
// its bundle. Nothing but root reaches dir: the overlay uses upper and
// work with huskd's credentials. The bundle is on the way to the rootfs,
// which libcontainer's init resolves as the container's root: a pod's
// directory (sandbox.MkdirPod), as is the pod's containers/ above it.
func makeContainerDirs(sb *sandbox.Sandbox, dir, bundle string) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700},
		// The overlay's root takes its upper directory's mode: this is the
		// container's "/".
		{filepath.Join(dir, "upper"), 0o755},
		{filepath.Join(dir, "work"), 0o700},
	} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Dir(bundle), bundle} {
		if err := sandbox.MkdirPod(sb, d); err != nil {
			return err
		}
	}
	// The overlay's root covers this directory's mode.
	return os.Mkdir(filepath.Join(bundle, "rootfs"), 0o700)
}

// podMappings are the ID mappings of a pod in its own user namespace.
func podMappings(sb *sandbox.Sandbox) (uids, gids []specs.LinuxIDMapping) {
	if sb.Namespaces[sandbox.NSUser] == "" {
		return nil, nil
	}
	u := sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	conv := func(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
		var out []specs.LinuxIDMapping
		for _, m := range ms {
			out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
		}
		return out
	}
	return conv(u.GetUids()), conv(u.GetGids())
}

// mountRootfs mounts the container's overlay: the image's layers under
// its own upper and work directories in dir. In a pod with its own user
// namespace the layers are stacked through ID-mapped mounts, and the upper
// layer belongs to the host IDs of the container's root, so that the
// container's root owns its image as it would anywhere else.
func mountRootfs(layers []string, dir, bundle, rootfs, userns string, uids, gids []specs.LinuxIDMapping) error {
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if userns == "" {
		return layer.Mount(layers, upper, work, rootfs)
	}
	rootUID, rootGID := hostID(uids, 0), hostID(gids, 0)
	for _, d := range []string{upper, work} {
		if err := os.Chown(d, int(rootUID), int(rootGID)); err != nil {
			return err
		}
	}
	lowersDir := filepath.Join(bundle, "lowers")
	var targets []string
	for i := range layers {
		t := filepath.Join(lowersDir, fmt.Sprint(i))
		if err := os.MkdirAll(t, 0o700); err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if err := layer.IDMap(layers, targets, userns); err != nil {
		return err
	}
	err := layer.Mount(targets, upper, work, rootfs)
	// The overlay holds its layers: the ID-mapped mounts it was built from
	// are not needed any more.
	for _, t := range targets {
		_ = layer.Unmount(t)
	}
	_ = os.RemoveAll(lowersDir)
	return err
}

// hostID is the host ID that id maps to.
func hostID(ms []specs.LinuxIDMapping, id uint32) uint32 {
	for _, m := range ms {
		if id >= m.ContainerID && id < m.ContainerID+m.Size {
			return m.HostID + id - m.ContainerID
		}
	}
	return id
}

// mountImageVolume mounts, for Config.mounts[i] with an image
// (KEP-4639), what its image_sub_path names inside the image (the whole
// image when empty) at <bundle>/image-volumes/<i>, and returns that path
// and the image's ID. The sub path is resolved inside the image only (a
// link to "/" or "/etc", or one climbing "../..", means the image's own,
// as for a container whose root the image is), the entry it resolves to
// must be a directory or a regular file, and what is mounted is the entry
// that resolution opened: the path given to libcontainer is huskd's own,
// with no link of the image's on it.
func (m *Manager) mountImageVolume(id, bundle string, i int, mnt *runtime.Mount, u *undo.Stack) (string, string, error) {
	if err := CheckImageMount(i, mnt); err != nil {
		return "", "", err
	}
	img, err := m.images.Resolve(mnt.GetImage().GetImage())
	if err != nil {
		return "", "", fmt.Errorf("image volume %q: %w", mnt.GetImage().GetImage(), err)
	}
	owner := fmt.Sprintf("%s/volume-%d", id, i)
	layers, err := m.images.Lease(owner, img.ID)
	if err != nil {
		return "", "", err
	}
	u.AddRecord(func(context.Context) error { return m.images.Release(owner) })
	// The volume's root is its top layer's; the mount point's mode is
	// hidden under it. runc opens the source on the host's side where the
	// container's init cannot reach it (a pod in its own user namespace).
	dir := filepath.Join(bundle, "image-volumes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	target := filepath.Join(dir, fmt.Sprint(i))
	sub := mnt.GetImageSubPath()
	err = layer.MountVolume(layers, target+".image", sub, target)
	if spe := (*layer.SubPathError)(nil); errors.As(err, &spe) {
		return "", "", errdefs.InvalidArgument(fmt.Sprintf("config.mounts[%d].image_sub_path", i), "%q %s (image %s)", sub, spe.Reason, img.ID)
	}
	if err != nil {
		return "", "", fmt.Errorf("image volume %q: %w", mnt.GetImage().GetImage(), err)
	}
	u.Add(func(context.Context) error { return layer.Unmount(target) })
	return target, img.ID, nil
}

// removeFiles unmounts the container's rootfs and image volumes, deletes
// its directories (the record last) and ends its image leases.
func (m *Manager) removeFiles(c *Container) error {
	var errs []error
	vols, _ := filepath.Glob(filepath.Join(c.Bundle, "image-volumes", "*"))
	for _, v := range vols {
		errs = append(errs, layer.Unmount(v))
	}
	errs = append(errs, layer.Unmount(filepath.Join(c.Bundle, "rootfs")))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	faults.Point("RemoveContainer/after-unmount")
	if err := os.RemoveAll(c.Bundle); err != nil {
		return err
	}
	if err := os.RemoveAll(m.dir(c.ID)); err != nil {
		return err
	}
	faults.Point("RemoveContainer/after-record")
	for i := range c.ImageVolumes {
		errs = append(errs, m.images.Release(fmt.Sprintf("%s/volume-%d", c.ID, i)))
	}
	errs = append(errs, m.images.Release(c.ID))
	return errors.Join(errs...)
}
