package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// SubPathError is a sub path that the image's content cannot give a
// volume: Reason says why, in words a pod's author can act on ("does not
// exist", "is a fifo, not a directory or a regular file"). Other errors
// of MountVolume are the host's.
type SubPathError struct {
	Reason string
	Err    error // the errno, when there is one
}

func (e *SubPathError) Error() string { return e.Reason }
func (e *SubPathError) Unwrap() error { return e.Err }

// ResolveInRoot opens sub inside the tree whose root directory is root,
// as the container would if root were its "/": a symbolic link, absolute
// or climbing, resolves inside root (openat2 RESOLVE_IN_ROOT), never on
// the host; a final symbolic link is followed the same way. It refuses
// /proc-style magic links and mount crossings. sub may be anything,
// including "" (root itself). The result is an O_PATH descriptor: what it
// names can be mounted, stat'ed or reopened, and cannot be swapped by a
// rename after the fact.
//
// Errors: a *SubPathError for what the tree's content decides (missing,
// a loop of links, a mount crossing); others (ENOSYS before Linux 5.6) are
// the host's.
func ResolveInRoot(root *os.File, sub string) (*os.File, error) {
	if sub == "" {
		sub = "."
	}
	if strings.ContainsRune(sub, 0) {
		return nil, &SubPathError{Reason: "contains a NUL byte", Err: unix.EINVAL}
	}
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	var fd int
	var err error
	// EAGAIN: a rename somewhere in the tree raced the lookup. The image
	// is read-only, so a retry settles it; the bound is for a tree that is
	// not.
	for range 16 {
		fd, err = unix.Openat2(int(root.Fd()), sub, how)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return os.NewFile(uintptr(fd), root.Name()+"/"+sub), nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return nil, &SubPathError{Reason: "does not exist", Err: fs.ErrNotExist}
	case errors.Is(err, unix.ELOOP):
		return nil, &SubPathError{Reason: "has too many levels of symbolic links", Err: err}
	case errors.Is(err, unix.EXDEV):
		return nil, &SubPathError{Reason: "crosses a mount point", Err: err}
	case errors.Is(err, unix.ENAMETOOLONG):
		return nil, &SubPathError{Reason: "is too long", Err: err}
	case errors.Is(err, unix.EACCES):
		return nil, &SubPathError{Reason: "is not searchable", Err: err}
	}
	return nil, fmt.Errorf("resolving %q inside %s: %w", sub, root.Name(), err)
}

// volumeAttrs are what every image volume carries, on each of its mounts:
// an image is shared by all that mount it and must not change, and image
// content (set-user-ID files, device nodes) is not trusted to act on the
// host's behalf.
const volumeAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV

// MountVolume mounts at target what sub names inside the image made of
// lower (bottom first): the whole image when sub is "", else the
// directory or regular file that sub resolves to inside the image
// (ResolveInRoot), never anything of the host's. target must not exist;
// MountVolume creates it (a directory or an empty file, as the resolved
// entry is) and mounts there a clone of exactly that entry, made from
// the descriptor the resolution returned, read-only, nosuid and nodev
// recursively and of private propagation. stage is an empty directory
// path of the caller's where the image is mounted for the while of the
// call; it is unmounted and removed before MountVolume returns.
//
// On error nothing is left mounted and target does not exist. A
// *SubPathError is the image content's fault (sub missing, or neither a
// directory nor a regular file); others are the host's.
func MountVolume(lower []string, stage, sub, target string) (retErr error) {
	if err := os.Mkdir(stage, 0o700); err != nil {
		return err
	}
	if err := Mount(lower, "", "", stage); err != nil {
		_ = os.Remove(stage)
		return err
	}
	defer func() {
		err := Unmount(stage)
		if err == nil {
			err = os.Remove(stage)
		}
		if err != nil && retErr == nil {
			// The volume is whole, but the call fails: it must not stay.
			_ = Unmount(target)
			_ = os.Remove(target)
			retErr = err
		}
	}()
	root, err := os.OpenFile(stage, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	src, err := ResolveInRoot(root, sub)
	if err != nil {
		return err
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = os.Mkdir(target, 0o755)
	case unix.S_IFREG:
		var fd int
		fd, err = unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
	default:
		return &SubPathError{Reason: fmt.Sprintf("is a %s, not a directory or a regular file", fileType(st.Mode))}
	}
	if err != nil {
		return err
	}
	if err := attachClone(src, target); err != nil {
		_ = os.Remove(target)
		return err
	}
	return nil
}

// attachClone mounts a clone of the entry src names (its own mount alone,
// no submounts) at target, with volumeAttrs. target is opened once,
// without following a link, and the clone is moved onto that descriptor.
func attachClone(src *os.File, target string) error {
	dst, err := unix.Open(target, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	tree, err := unix.OpenTree(int(src.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("cloning the image volume's mount: %w", err)
	}
	defer unix.Close(tree)
	attr := &unix.MountAttr{Attr_set: volumeAttrs, Propagation: unix.MS_PRIVATE}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("making the image volume read-only, nosuid and nodev: %w", err)
	}
	if err := unix.MoveMount(tree, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting the image volume at %s: %w", target, err)
	}
	return nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}
