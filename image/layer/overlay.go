package layer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount mounts at target an overlay of lower, the image's layer directories
// bottom first, with the container's own upper and work directories. With
// upper empty the mount is read-only (an image volume, or a read-only
// rootfs made of layers alone); a single lower layer is then bind-mounted.
//
// It uses the new mount API, which takes each lower layer as its own
// parameter ("lowerdir+", Linux 6.8), so no count of layers hits the page
// size limit of the classic mount data; older kernels get the classic form.
func Mount(lower []string, upper, work, target string) error {
	if len(lower) == 0 {
		return errors.New("overlay: no lower layer")
	}
	if upper == "" && len(lower) == 1 {
		if err := unix.Mount(lower[0], target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s: %w", lower[0], err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("making %s read-only: %w", target, err)
		}
		return nil
	}
	err := mountNewAPI(lower, upper, work, target)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		err = mountClassic(lower, upper, work, target)
	}
	return err
}

func mountNewAPI(lower []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fsfd)
	// Top-most first, as in lowerdir=top:...:bottom.
	for i := len(lower) - 1; i >= 0; i-- {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", lower[i]); err != nil {
			return fmt.Errorf("overlay lowerdir+ %s: %w", lower[i], err)
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fsfd, "upperdir", upper); err != nil {
			return fmt.Errorf("overlay upperdir %s: %w", upper, err)
		}
		if err := unix.FsconfigSetString(fsfd, "workdir", work); err != nil {
			return fmt.Errorf("overlay workdir %s: %w", work, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("creating overlay: %w", err)
	}
	attrs := 0
	if upper == "" {
		attrs = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("overlay fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("overlay move_mount to %s: %w", target, err)
	}
	return nil
}

func mountClassic(lower []string, upper, work, target string) error {
	dirs := make([]string, len(lower))
	for i, l := range lower {
		dirs[len(lower)-1-i] = strings.ReplaceAll(l, ":", `\:`)
	}
	data := "lowerdir=" + strings.Join(dirs, ":")
	flags := uintptr(0)
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work
	} else {
		flags = unix.MS_RDONLY
	}
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("overlay: %d layers do not fit the mount data of this kernel", len(lower))
	}
	if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
		return fmt.Errorf("mounting overlay at %s: %w", target, err)
	}
	return nil
}

// Unmount detaches the mount at target; not mounted is fine.
func Unmount(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmounting %s: %w", target, err)
}
