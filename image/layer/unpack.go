// Package layer turns OCI image layers into directories that overlayfs can
// stack, and stacks them. Unpack is the only code in husk that writes what
// a registry sent onto the node's filesystem, so it trusts nothing in it.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	whiteoutMeta   = ".wh..wh."
)

// OpaqueXattr marks an overlay directory that hides the lower layers'
// directory of the same name.
const OpaqueXattr = "trusted.overlay.opaque"

// ErrUnsafe is wrapped by the errors of entries that would land outside the
// layer directory.
var ErrUnsafe = errors.New("unsafe layer entry")

// Stats says what an unpacked layer holds.
type Stats struct {
	Bytes  int64 // file content bytes
	Inodes int64 // files, directories, links, devices (not hard links)
}

// Unpack applies the uncompressed layer tar stream r to dir, an empty
// directory, in the form overlayfs reads as a lower layer:
//
//   - a whiteout ".wh.NAME" becomes a 0/0 character device NAME;
//   - an opaque marker ".wh..wh..opq" sets trusted.overlay.opaque=y on its
//     directory;
//   - ownership, modes (with setuid/setgid/sticky), extended attributes,
//     times, hard links, symlinks and device nodes are kept.
//
// An entry whose name is absolute or climbs with "..", a hard link whose
// target does, and any write through a symlink that leads out of dir fail
// the whole layer with ErrUnsafe: nothing lands outside dir (dir is opened
// as an os.Root, which refuses such paths). On error the caller removes dir.
func Unpack(r io.Reader, dir string) (Stats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, err
	}
	defer root.Close()
	u := &unpacker{root: root}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.stats, fmt.Errorf("reading layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		if err := u.times(u.dirs[i].name, u.dirs[i].hdr); err != nil {
			return u.stats, err
		}
	}
	return u.stats, nil
}

type unpacker struct {
	root  *os.Root
	stats Stats
	dirs  []dirTimes
	buf   []byte
}

type dirTimes struct {
	name string
	hdr  *tar.Header
}

// cleanName turns a tar name into a path relative to the layer root, or
// refuses it.
func cleanName(name string) (string, error) {
	if path.IsAbs(name) {
		return "", fmt.Errorf("%w: absolute path", ErrUnsafe)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: path climbs out with \"..\"", ErrUnsafe)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		// The layer's root directory itself: only its metadata.
		if hdr.Typeflag == tar.TypeDir {
			if err := u.meta(".", hdr); err != nil {
				return err
			}
			u.dirs = append(u.dirs, dirTimes{".", hdr})
		}
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if dir != "." {
		// Parents missing from the tar are created like Docker does.
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return unsafeOr(err)
		}
	}

	switch {
	case base == whiteoutOpaque:
		return u.withDir(dir, func(fd int) error {
			return unix.Fsetxattr(fd, OpaqueXattr, []byte("y"), 0)
		})
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // aufs metadata (.wh..wh.plnk and the like): not content
	case strings.HasPrefix(base, whiteoutPrefix):
		target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
		if err := u.replace(target, false); err != nil {
			return err
		}
		err := u.withDir(dir, func(fd int) error {
			return unix.Mknodat(fd, path.Base(target), unix.S_IFCHR, 0)
		})
		if err != nil {
			return err
		}
		u.stats.Inodes++
		return unsafeOr(u.root.Lchown(target, hdr.Uid, hdr.Gid))
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.replace(name, true); err != nil {
			return err
		}
		if err := u.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return unsafeOr(err)
		}
		u.dirs = append(u.dirs, dirTimes{name, hdr})
	case tar.TypeReg, tar.TypeRegA:
		if err := u.replace(name, false); err != nil {
			return err
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return unsafeOr(err)
		}
		if u.buf == nil {
			u.buf = make([]byte, 128<<10)
		}
		n, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), u.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("short file: %d of %d bytes", n, hdr.Size)
		}
		u.stats.Bytes += n
	case tar.TypeSymlink:
		if err := u.replace(name, false); err != nil {
			return err
		}
		// The target is data, never followed while unpacking.
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return unsafeOr(err)
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link to %q", ErrUnsafe, hdr.Linkname)
		}
		if err := u.replace(name, false); err != nil {
			return err
		}
		if err := u.root.Link(target, name); err != nil {
			return unsafeOr(err)
		}
		return nil // a hard link shares its target's inode and metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := u.replace(name, false); err != nil {
			return err
		}
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := u.withDir(dir, func(fd int) error { return unix.Mknodat(fd, base, mode, int(dev)) }); err != nil {
			return err
		}
	default:
		return nil // pax/GNU metadata entries and the like carry no file
	}
	u.stats.Inodes++
	if err := u.meta(name, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeDir {
		return u.times(name, hdr)
	}
	return nil
}

// replace makes room for a new entry at name: whatever is there goes,
// except a directory that a new directory merges into.
func (u *unpacker) replace(name string, newIsDir bool) error {
	fi, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return unsafeOr(err)
	}
	if fi.IsDir() && newIsDir {
		return nil
	}
	return unsafeOr(u.root.RemoveAll(name))
}

// meta sets ownership, mode and extended attributes. Mode after owner:
// chown clears setuid and setgid.
func (u *unpacker) meta(name string, hdr *tar.Header) error {
	if err := u.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
		return unsafeOr(err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := u.root.Chmod(name, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return unsafeOr(err)
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		err := u.atParent(name, func(p string) error { return unix.Lsetxattr(p, attr, []byte(v), 0) })
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting xattr %s: %w", attr, err)
		}
	}
	return nil
}

// times sets access and modification times without following a symlink.
func (u *unpacker) times(name string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{toTimespec(at), toTimespec(hdr.ModTime)}
	return u.atParent(name, func(p string) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func toTimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// withDir runs fn on a descriptor of directory dir, opened inside the root.
func (u *unpacker) withDir(dir string, fn func(fd int) error) error {
	f, err := u.root.Open(dir)
	if err != nil {
		return unsafeOr(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %q is not a directory", ErrUnsafe, dir)
	}
	return fn(int(f.Fd()))
}

// atParent runs fn on a path that names name through a descriptor of its
// parent directory: no component of it can be swapped for a symlink, and
// the last one is not followed by the l* calls fn makes.
func (u *unpacker) atParent(name string, fn func(p string) error) error {
	dir, base := path.Split(name)
	if name == "." {
		dir, base = ".", "."
	}
	if dir == "" {
		dir = "."
	}
	return u.withDir(strings.TrimSuffix(dir, "/"), func(fd int) error {
		return fn("/proc/self/fd/" + strconv.Itoa(fd) + "/" + base)
	})
}

// unsafeOr marks os.Root's refusals as ErrUnsafe.
func unsafeOr(err error) error {
	if err != nil && strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("%w: %v", ErrUnsafe, err)
	}
	return err
}
