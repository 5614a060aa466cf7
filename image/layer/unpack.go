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
	"syscall"
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

// ErrLimit is wrapped by the errors of layers that exceed their Limits.
var ErrLimit = errors.New("layer exceeds a limit")

// maxPath bounds an entry's name, as the kernel's PATH_MAX bounds every
// path a program can open: what lies deeper is unreachable anyway, and the
// bound keeps the unpacker's list of open directories small.
const maxPath = 4096

// Limits cap what one layer may unpack to, so that a small compressed
// layer cannot fill the node's disk or inode table. Zero means no cap.
// Their names in errors are huskd's [image] configuration keys.
type Limits struct {
	// Bytes caps the uncompressed tar stream (see Stream) and the bytes of
	// its files (a sparse file can write more than the stream holds).
	Bytes int64
	// Files caps the entries created: files, directories (those the
	// layer only implies too), links, devices and whiteouts.
	Files int64
}

func (l Limits) bytesError() error {
	return fmt.Errorf("%w: it expands to more than %d bytes ([image] max_layer_bytes)", ErrLimit, l.Bytes)
}

func (l Limits) filesError() error {
	return fmt.Errorf("%w: it holds more than %d files ([image] max_layer_files)", ErrLimit, l.Files)
}

// Stream returns r, failing with ErrLimit once more than l.Bytes were
// read: the bound on an uncompressed layer stream, whatever part of it
// (tar headers, padding, data after the end) the bytes are in.
func (l Limits) Stream(r io.Reader) io.Reader {
	if l.Bytes <= 0 {
		return r
	}
	return &streamLimit{r: r, left: l.Bytes, lim: l}
}

type streamLimit struct {
	r    io.Reader
	left int64
	lim  Limits
}

func (s *streamLimit) Read(p []byte) (int, error) {
	if s.left < 0 {
		return 0, s.lim.bytesError()
	}
	if int64(len(p)) > s.left+1 {
		p = p[:s.left+1]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if s.left < 0 {
		return n + int(s.left), s.lim.bytesError()
	}
	return n, err
}

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
// as an os.Root, which refuses such paths). A layer over lim fails with
// ErrLimit as soon as it is. On error the caller removes dir.
//
// Memory does not grow with the layer: a directory's times are set when
// the stream leaves it (tars list a directory's contents after it), so
// only the directories around the current entry are remembered; an entry
// that comes back to a directory already left keeps that directory's
// times.
func Unpack(r io.Reader, dir string, lim Limits) (Stats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, err
	}
	defer root.Close()
	u := &unpacker{root: root, lim: lim}
	return u.run(r)
}

func (u *unpacker) run(r io.Reader) (Stats, error) {
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
	return u.stats, u.leave("")
}

type unpacker struct {
	root  *os.Root
	lim   Limits
	stats Stats
	// entries counts what the layer created, for lim.Files.
	entries int64
	// open holds the directories the stream is inside, outermost first,
	// each an ancestor of the next, with the times to give them when the
	// stream leaves them.
	open []dirTimes
	buf  []byte
}

type dirTimes struct {
	name         string // "." for the layer root
	atime, mtime time.Time
}

// leave sets the times of the open directories that are not ancestors of
// name, innermost first, and forgets them; leave("") leaves them all.
func (u *unpacker) leave(name string) error {
	for len(u.open) > 0 {
		d := u.open[len(u.open)-1]
		if name != "" && (d.name == "." || strings.HasPrefix(name, d.name+"/")) {
			return nil
		}
		u.open = u.open[:len(u.open)-1]
		if err := u.setTimes(d.name, d.atime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// isOpen says whether dir is one of the open directories.
func (u *unpacker) isOpen(dir string) bool {
	for _, d := range u.open {
		if d.name == dir {
			return true
		}
	}
	return false
}

// count records n more entries created, failing past lim.Files.
func (u *unpacker) count(n int64) error {
	u.entries += n
	if u.lim.Files > 0 && u.entries > u.lim.Files {
		return u.lim.filesError()
	}
	return nil
}

// cleanName turns a tar name into a path relative to the layer root, or
// refuses it.
func cleanName(name string) (string, error) {
	if len(name) > maxPath {
		return "", fmt.Errorf("%w: path longer than %d bytes", ErrUnsafe, maxPath)
	}
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
			if err := u.leave("."); err != nil {
				return err
			}
			if err := u.meta(".", hdr); err != nil {
				return err
			}
			u.open = append(u.open[:0], dirTimes{".", hdr.AccessTime, hdr.ModTime})
		}
		return nil
	}
	if err := u.leave(name); err != nil {
		return err
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if len(u.open) > 0 && u.open[len(u.open)-1].name == dir {
		return u.apply(name, dir, base, hdr, r)
	}
	// The entry is not in the directory the stream is in: its parent was
	// left already, or is implied. Creating it changes the times of the
	// nearest directory that exists, so keep them unless the directory is
	// open (its times are set when the stream leaves it).
	keep, missing, err := u.nearestExisting(dir)
	if err != nil {
		return err
	}
	if err := u.count(missing); err != nil {
		return err
	}
	u.stats.Inodes += missing
	var st *syscall.Stat_t
	if !u.isOpen(keep) {
		if fi, err := u.root.Lstat(keep); err == nil {
			st, _ = fi.Sys().(*syscall.Stat_t)
		}
	}
	if dir != "." && missing > 0 {
		// Parents missing from the tar are created like Docker does.
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return unsafeOr(err)
		}
	}
	if err := u.apply(name, dir, base, hdr, r); err != nil {
		return err
	}
	if st != nil {
		return u.setTimes(keep, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
	}
	return nil
}

// creates says whether an entry makes a directory entry on disk: anything
// but an opaque marker, aufs metadata and tar's own metadata entries.
func creates(base string, typ byte) bool {
	switch {
	case base == whiteoutOpaque, strings.HasPrefix(base, whiteoutMeta):
		return false
	case strings.HasPrefix(base, whiteoutPrefix):
		return true
	}
	switch typ {
	//lint:ignore SA1019 old archives still carry '\x00' regular files, and images are old archives
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return true
	}
	return false
}

// nearestExisting returns dir or its nearest ancestor that exists, and
// how many directories are missing below it.
func (u *unpacker) nearestExisting(dir string) (string, int64, error) {
	var missing int64
	for dir != "." {
		_, err := u.root.Lstat(dir)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", 0, unsafeOr(err)
		}
		missing++
		dir = path.Dir(dir)
	}
	return dir, missing, nil
}

// apply creates the entry name (in dir, named base) that hdr describes.
func (u *unpacker) apply(name, dir, base string, hdr *tar.Header, r io.Reader) error {
	if creates(base, hdr.Typeflag) {
		if err := u.count(1); err != nil {
			return err
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
		u.open = append(u.open, dirTimes{name, hdr.AccessTime, hdr.ModTime})
	//lint:ignore SA1019 as above: old archives' regular files
	case tar.TypeReg, tar.TypeRegA:
		if err := u.replace(name, false); err != nil {
			return err
		}
		if u.lim.Bytes > 0 && hdr.Size > u.lim.Bytes-u.stats.Bytes {
			return u.lim.bytesError()
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

// times sets the access and modification times hdr gives, without
// following a symlink.
func (u *unpacker) times(name string, hdr *tar.Header) error {
	return u.setTimes(name, hdr.AccessTime, hdr.ModTime)
}

// setTimes sets access (zero: the modification time) and modification
// times, without following a symlink.
func (u *unpacker) setTimes(name string, at, mt time.Time) error {
	if at.IsZero() {
		at = mt
	}
	ts := []unix.Timespec{toTimespec(at), toTimespec(mt)}
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
// O_DIRECTORY makes the kernel refuse anything else before opening it: the
// layer may have put a FIFO there (open would block forever) or a device
// node (open would run its driver in huskd).
func (u *unpacker) withDir(dir string, fn func(fd int) error) error {
	f, err := u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w: %q is not a directory", ErrUnsafe, dir)
	}
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
