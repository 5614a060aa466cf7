package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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

// fileUserDB is a UserDB read from an image's /etc/passwd and /etc/group.
type fileUserDB struct {
	users  []passwdEntry
	groups []groupEntry
}

// ParseUserDB reads /etc/passwd and /etc/group contents (either may be nil:
// many images ship neither). Lines that are blank, comments, NIS
// compat entries or malformed are skipped rather than failing: an image's
// odd line must not stop its containers from starting when the line is not
// the one they need.
func ParseUserDB(passwd, group []byte) UserDB {
	db := &fileUserDB{}
	for _, f := range colonLines(passwd) {
		if e, ok := parsePasswd(f); ok {
			db.users = append(db.users, e)
		}
	}
	for _, f := range colonLines(group) {
		if e, ok := parseGroup(f); ok {
			db.groups = append(db.groups, e)
		}
	}
	return db
}

// colonLines splits content into the colon-separated fields of its
// meaningful lines.
func colonLines(content []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(content))
	// A group with thousands of members makes a long line.
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
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
	for _, u := range db.users {
		if (numeric && u.uid == id) || (!numeric && u.name == nameOrUID) {
			return u.uid, u.gid, u.name, true
		}
	}
	return 0, 0, "", false
}

func (db *fileUserDB) LookupGroup(nameOrGID string) (int64, bool) {
	id, numeric := parseID(nameOrGID)
	for _, g := range db.groups {
		if (numeric && g.gid == id) || (!numeric && g.name == nameOrGID) {
			return g.gid, true
		}
	}
	return 0, false
}

func (db *fileUserDB) GroupsOf(user string) []int64 {
	var gids []int64
	if user == "" {
		return nil
	}
	for _, g := range db.groups {
		if slices.Contains(g.members, user) && !slices.Contains(gids, g.gid) {
			gids = append(gids, g.gid)
		}
	}
	return gids
}

// opaqueXattr marks an overlay directory that hides the same directory in
// lower layers; image/layer writes it when unpacking. Repeated here so that
// reading an image file does not pull the unpacker into this package.
const opaqueXattr = "trusted.overlay.opaque"

// maxSymlinks bounds symlink resolution like the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// ReadImageFile reads name ("etc/passwd") from the image whose unpacked
// layer directories are layers, bottom layer first, as the container would
// see it through overlayfs: the topmost layer holding the path wins, a
// whiteout (0/0 character device) or an opaque directory on the way hides
// the layers below, and symlinks resolve in the merged image, never outside
// it (each layer is opened as an os.Root). A path that is not there returns
// an error wrapping os.ErrNotExist.
func ReadImageFile(layers []string, name string) ([]byte, error) {
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
	b, err := v.roots[layer].ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	return b, nil
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
