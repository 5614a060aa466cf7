package layer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// IDMap mounts each of dirs at targets[i] as an ID-mapped bind mount
// through the user namespace at usernsPath: a file a layer stores as owned
// by 0 shows up owned by the host ID the pod's user namespace maps 0 to,
// so the container's root owns its image (overlayfs stacks such layers
// since Linux 5.19). On error nothing is left mounted.
func IDMap(dirs, targets []string, usernsPath string) (retErr error) {
	userns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening user namespace %s: %w", usernsPath, err)
	}
	defer unix.Close(userns)
	var done []string
	defer func() {
		if retErr != nil {
			for _, t := range done {
				_ = Unmount(t)
			}
		}
	}()
	for i, d := range dirs {
		fd, err := unix.OpenTree(unix.AT_FDCWD, d, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("cloning %s: %w", d, err)
		}
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)})
		if err == nil {
			err = unix.MoveMount(fd, "", unix.AT_FDCWD, targets[i], unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("ID-mapping %s: %w", d, err)
		}
		done = append(done, targets[i])
	}
	return nil
}

// ProbeIDMap says whether this kernel and the filesystem of dir can stack
// ID-mapped layers under an overlay: what a pod in its own user namespace
// needs. helper is a program that waits to be killed (the pause), run in
// a new user namespace for the probe's mapping.
func ProbeIDMap(dir, helper string) error {
	tmp, err := os.MkdirTemp(dir, "idmap-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := os.StartProcess(helper, []string{helper}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		_ = p.Kill()
		_, _ = p.Wait()
	}()
	var names []string
	for _, n := range []string{"lower", "mapped", "upper", "work", "merged"} {
		d := filepath.Join(tmp, n)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		names = append(names, d)
	}
	if err := IDMap([]string{names[0]}, []string{names[1]}, fmt.Sprintf("/proc/%d/ns/user", p.Pid)); err != nil {
		return err
	}
	defer Unmount(names[1])
	// Mount, as containers' are: kernels before 6.8 refuse the new mount
	// API's "lowerdir+" (EINVAL) and get the classic form.
	if err := Mount([]string{names[1]}, names[2], names[3], names[4]); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return err
		}
		return fmt.Errorf("overlay over an ID-mapped layer: %w", err)
	}
	return Unmount(names[4])
}
