package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// passwdEntry and groupEntry keep only what a container's identity needs.
type passwdEntry struct {
	name     string
	uid, gid int64
}

type groupEntry struct {
	name    string
	gid     int64
	members []string
}

// fileUserDB is a UserDB over /etc/passwd and /etc/group contents. Each
// question scans the file line by line: an image's files are not trusted,
// and one of hundreds of MiB must not be held in huskd's memory (nor the
// long scan's result: GroupsOf keeps at most maxGroups gids).
type fileUserDB struct {
	passwd, group func() (io.ReadCloser, error)
}

// maxUserDBLine bounds a line of passwd or group; a longer one is skipped.
// A group of thousands of members still fits.
const maxUserDBLine = 1 << 20

// maxGroups is the kernel's NGROUPS_MAX: a process can hold no more
// supplementary groups.
const maxGroups = 65536

// ParseUserDB reads /etc/passwd and /etc/group contents (either may be nil:
// many images ship neither). Lines that are blank, comments, NIS
// compat entries or malformed are skipped rather than failing: an image's
// odd line must not stop its containers from starting when the line is not
// the one they need.
func ParseUserDB(passwd, group []byte) UserDB {
	return &fileUserDB{
		passwd: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(passwd)), nil },
		group:  func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(group)), nil },
	}
}

// ImageUserDB is ParseUserDB over the image's /etc/passwd and /etc/group,
// found through its layers as OpenImageFile finds them (bottom layer
// first) and read as each question is asked. A file the image lacks, or
// that cannot be read, holds no entries.
func ImageUserDB(layers []string) UserDB {
	open := func(name string) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return OpenImageFile(layers, name) }
	}
	return &fileUserDB{passwd: open("etc/passwd"), group: open("etc/group")}
}

// scan calls fn with the fields of each meaningful line of the file open
// yields, until fn returns false.
func scan(open func() (io.ReadCloser, error), fn func(fields []string) bool) {
	rc, err := open()
	if err != nil {
		return
	}
	defer rc.Close()
	colonLines(rc, fn)
}

// colonLines calls fn with the colon-separated fields of each meaningful
// line of r, until fn returns false or r ends. A line longer than
// maxUserDBLine is skipped whole, without being held.
func colonLines(r io.Reader, fn func(fields []string) bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // a line longer than br's buffer, so far
	skip := false   // the current line is too long
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skip && len(long)+len(chunk) <= maxUserDBLine {
				long = append(long, chunk...)
			} else {
				skip, long = true, nil
			}
			continue
		}
		line := chunk
		if long != nil {
			long = append(long, chunk...)
			line = long
		}
		if !skip && len(line) <= maxUserDBLine {
			if l := strings.TrimSpace(string(line)); l != "" && l[0] != '#' && l[0] != '+' && l[0] != '-' {
				if !fn(strings.Split(l, ":")) {
					return
				}
			}
		}
		long, skip = nil, false
		if err != nil {
			return // io.EOF, or a read error: what was read is what there is
		}
	}
}

func parsePasswd(f []string) (passwdEntry, bool) {
	if len(f) < 4 || f[0] == "" {
		return passwdEntry{}, false
	}
	uid, ok1 := parseID(f[2])
	gid, ok2 := parseID(f[3])
	if !ok1 || !ok2 {
		return passwdEntry{}, false
	}
	return passwdEntry{name: f[0], uid: uid, gid: gid}, true
}

func parseGroup(f []string) (groupEntry, bool) {
	if len(f) < 3 || f[0] == "" {
		return groupEntry{}, false
	}
	gid, ok := parseID(f[2])
	if !ok {
		return groupEntry{}, false
	}
	e := groupEntry{name: f[0], gid: gid}
	if len(f) > 3 {
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				e.members = append(e.members, m)
			}
		}
	}
	return e, true
}

// parseID accepts what the kernel can hold in a uid_t/gid_t.
func parseID(s string) (int64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// LookupUser returns the first matching entry, as getpwnam/getpwuid do.
func (db *fileUserDB) LookupUser(nameOrUID string) (uid, gid int64, name string, ok bool) {
	id, numeric := parseID(nameOrUID)
	scan(db.passwd, func(f []string) bool {
		u, valid := parsePasswd(f)
		if valid && ((numeric && u.uid == id) || (!numeric && u.name == nameOrUID)) {
			uid, gid, name, ok = u.uid, u.gid, u.name, true
			return false
		}
		return true
	})
	return uid, gid, name, ok
}

func (db *fileUserDB) LookupGroup(nameOrGID string) (gid int64, ok bool) {
	id, numeric := parseID(nameOrGID)
	scan(db.group, func(f []string) bool {
		g, valid := parseGroup(f)
		if valid && ((numeric && g.gid == id) || (!numeric && g.name == nameOrGID)) {
			gid, ok = g.gid, true
			return false
		}
		return true
	})
	return gid, ok
}

func (db *fileUserDB) GroupsOf(user string) []int64 {
	if user == "" {
		return nil
	}
	var gids []int64
	seen := map[int64]bool{}
	scan(db.group, func(f []string) bool {
		g, valid := parseGroup(f)
		if valid && !seen[g.gid] && slices.Contains(g.members, user) {
			seen[g.gid] = true
			gids = append(gids, g.gid)
		}
		return len(gids) < maxGroups
	})
	return gids
}

// opaqueXattr marks an overlay directory that hides the same directory in
// lower layers; image/layer writes it when unpacking. Repeated here so that
// reading an image file does not pull the unpacker into this package.
const opaqueXattr = "trusted.overlay.opaque"

// maxSymlinks bounds symlink resolution like the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// OpenImageFile opens name ("etc/passwd") from the image whose unpacked
// layer directories are layers, bottom layer first, as the container would
// see it through overlayfs: the topmost layer holding the path wins, a
// whiteout (0/0 character device) or an opaque directory on the way hides
// the layers below, and symlinks resolve in the merged image, never outside
// it (each layer is opened as an os.Root). Only a regular file opens. A
// path that is not there returns an error wrapping os.ErrNotExist. The
// caller reads the file as it needs, never whole: it is the image's.
func OpenImageFile(layers []string, name string) (*os.File, error) {
	roots := make([]*os.Root, 0, len(layers))
	defer func() {
		for _, r := range roots {
			r.Close()
		}
	}()
	for i := len(layers) - 1; i >= 0; i-- {
		r, err := os.OpenRoot(layers[i])
		if err != nil {
			return nil, fmt.Errorf("image layer %s: %w", layers[i], err)
		}
		roots = append(roots, r)
	}
	v := overlayView{roots: roots}
	layer, p, err := v.resolve(name)
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	f, err := v.roots[layer].Open(p)
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	return f, nil
}

// overlayView answers lookups in the merged view of layers, topmost first.
type overlayView struct {
	roots []*os.Root
}

// resolve walks name component by component, resolving symlinks against the
// merged image (an absolute target restarts at the image root, ".." stops
// at it, as in a chroot), and returns the layer and symlink-free path of the
// regular file it names.
func (v overlayView) resolve(name string) (int, string, error) {
	todo := pathParts(name)
	var cur []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := append(cur[:len(cur):len(cur)], c)
		p := strings.Join(next, "/")
		layer, fi, err := v.lookup(p)
		if err != nil {
			return 0, "", err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinks {
				return 0, "", &fs.PathError{Op: "resolve", Path: name, Err: syscall.ELOOP}
			}
			target, err := v.roots[layer].Readlink(p)
			if err != nil {
				return 0, "", err
			}
			if path.IsAbs(target) {
				cur = nil
			}
			todo = append(pathParts(target), todo...)
		case fi.IsDir():
			cur = next
		case len(todo) > 0:
			// A file where a directory is needed: nothing below it exists.
			return 0, "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrNotExist}
		case !fi.Mode().IsRegular():
			return 0, "", &fs.PathError{Op: "resolve", Path: name, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
		default:
			return layer, p, nil
		}
	}
	return 0, "", &fs.PathError{Op: "resolve", Path: name, Err: syscall.EISDIR}
}

// pathParts splits p into components, dropping empty ones and ".".
func pathParts(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// lookup finds the topmost layer that provides p, whose ancestors are
// directories in the merged view, and returns it with p's Lstat there.
func (v overlayView) lookup(p string) (int, fs.FileInfo, error) {
	ancestors := ancestorsOf(p)
	for i, root := range v.roots {
		present, hides, err := ancestorsIn(root, ancestors)
		if err != nil {
			return 0, nil, err
		}
		if present {
			fi, err := root.Lstat(p)
			switch {
			case err == nil && isWhiteout(fi):
				return 0, nil, &fs.PathError{Op: "lookup", Path: p, Err: fs.ErrNotExist}
			case err == nil:
				return i, fi, nil
			case !errors.Is(err, fs.ErrNotExist):
				return 0, nil, err
			}
		}
		if hides {
			break
		}
	}
	return 0, nil, &fs.PathError{Op: "lookup", Path: p, Err: fs.ErrNotExist}
}

// ancestorsOf returns "a", "a/b" for "a/b/c".
func ancestorsOf(p string) []string {
	var out []string
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// ancestorsIn says whether every ancestor is a directory in this layer
// (present), and whether this layer hides p in the layers below it: overlay
// merges a directory only with the same directory below, so a whiteout, a
// non-directory or an opaque directory on the way ends the merge.
func ancestorsIn(root *os.Root, ancestors []string) (present, hides bool, err error) {
	for _, a := range ancestors {
		fi, err := root.Lstat(a)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, hides, nil
		case err != nil:
			return false, false, err
		case !fi.IsDir():
			return false, true, nil
		}
		opaque, err := isOpaque(root, a)
		if err != nil {
			return false, false, err
		}
		hides = hides || opaque
	}
	return true, hides, nil
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func isOpaque(root *os.Root, dir string) (bool, error) {
	f, err := root.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 8)
	n, err := unix.Fgetxattr(int(f.Fd()), opaqueXattr, buf)
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	case err != nil:
		return false, &fs.PathError{Op: "getxattr", Path: dir, Err: err}
	}
	return string(buf[:n]) == "y", nil
}
