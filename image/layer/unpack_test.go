package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	body       string
	xattrs     map[string]string
	mtime      time.Time
	major      int64
}

func tarOf(t testing.TB, entries ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.body)), ModTime: e.mtime, Devmajor: e.major, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1_600_000_000, 0)
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, mknod, trusted.* xattrs, overlay mounts)")
	}
}

func unpackInto(t *testing.T, r *bytes.Reader) (string, Stats, error) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := Unpack(r, dir)
	return dir, st, err
}

func TestUnpackKeepsMetadata(t *testing.T) {
	needRoot(t)
	mtime := time.Unix(1_500_000_000, 123456789)
	dir, st, err := unpackInto(t, tarOf(t,
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: mtime},
		entry{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\n", mode: 0o644, mtime: mtime},
		entry{name: "bin/su", body: "elf", mode: 0o4755, uid: 0, gid: 0},
		entry{name: "home/user/notes", body: "hi", mode: 0o600, uid: 1000, gid: 1001, xattrs: map[string]string{"user.note": "kept"}},
		entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "bin/busybox", body: "bb", mode: 0o755},
		entry{name: "bin/ls", typ: tar.TypeLink, link: "bin/busybox"},
		entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1},
		entry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
	))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, mode os.FileMode, uid, gid int) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			return
		}
		s := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || int(s.Uid) != uid || int(s.Gid) != gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", name, fi.Mode(), s.Uid, s.Gid, mode, uid, gid)
		}
	}
	check("bin/su", 0o755|os.ModeSetuid, 0, 0)
	check("home/user/notes", 0o600, 1000, 1001)
	check("tmp", 0o777|os.ModeDir|os.ModeSticky, 0, 0)
	check("dev/null", 0o666|os.ModeDevice|os.ModeCharDevice, 0, 0)
	check("run/fifo", 0o600|os.ModeNamedPipe, 0, 0)
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("symlink target %q", l)
	}
	a, _ := os.Stat(filepath.Join(dir, "bin/ls"))
	b, _ := os.Stat(filepath.Join(dir, "bin/busybox"))
	if !os.SameFile(a, b) {
		t.Error("hard link is a copy")
	}
	v := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "home/user/notes"), "user.note", v); err != nil || string(v[:n]) != "kept" {
		t.Errorf("xattr: %q, %v", v[:n], err)
	}
	for _, name := range []string{"etc/passwd", "etc"} {
		fi, _ := os.Lstat(filepath.Join(dir, name))
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("%s mtime %v, want %v", name, fi.ModTime(), mtime)
		}
	}
	if st.Bytes != int64(len("root:x:0:0::/root:/bin/sh\n")+len("elf")+len("hi")+len("bb")) || st.Inodes != 9 {
		t.Errorf("stats %+v", st)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	needRoot(t)
	dir, _, err := unpackInto(t, tarOf(t,
		entry{name: "a/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "a/.wh.gone", body: ""},
		entry{name: "b/.wh..wh..opq", body: ""},
		entry{name: "b/fresh", body: "new"},
		entry{name: ".wh..wh.plnk/", typ: tar.TypeDir},
	))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "a/gone"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 || fi.Sys().(*syscall.Stat_t).Rdev != 0 {
		t.Errorf("whiteout a/gone: %v %v, want a 0/0 character device", fi, err)
	}
	v := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "b"), OpaqueXattr, v); err != nil || string(v[:n]) != "y" {
		t.Errorf("opaque b: %q, %v", v[:n], err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("layer root holds %v, want a and b (no .wh. names)", names)
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name    string
		entries []entry
	}{
		{"dot-dot", []entry{{name: "../escaped", body: "x"}}},
		{"dot-dot deeper", []entry{{name: "a/../../escaped", body: "x"}}},
		{"absolute", []entry{{name: "/escaped", body: "x"}}},
		{"through an absolute symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "/"},
			{name: "link/escaped", body: "x"},
		}},
		{"through a relative symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../"},
			{name: "link/escaped", body: "x"},
		}},
		{"directory through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "link/escaped/", typ: tar.TypeDir},
		}},
		{"hard link out", []entry{{name: "pw", typ: tar.TypeLink, link: "../outside"}}},
		{"hard link through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "pw", typ: tar.TypeLink, link: "link/outside"},
		}},
		{"whiteout through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "link/.wh.outside", body: ""},
		}},
		{"device through a symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "link/escaped", typ: tar.TypeChar, major: 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "layer")
			_ = os.Mkdir(dir, 0o755)
			// Something outside the layer that an escape would hit.
			if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Unpack(tarOf(t, c.entries...), dir)
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("Unpack = %v, want ErrUnsafe", err)
			}
			entries, _ := os.ReadDir(parent)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			sort.Strings(names)
			if strings.Join(names, ",") != "layer,outside" {
				t.Errorf("outside the layer: %v", names)
			}
			if b, _ := os.ReadFile(filepath.Join(parent, "outside")); string(b) != "keep" {
				t.Errorf("a file outside the layer was changed: %q", b)
			}
			if _, err := os.Lstat("/escaped"); err == nil {
				t.Fatal("/escaped was created")
			}
		})
	}
}

// Layers stacked by Mount give the tree the image means: whiteouts hide
// lower files, an opaque directory hides the lower directory's content.
func TestOverlayMergesLayers(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	mk := func(name string, entries ...entry) string {
		d := filepath.Join(base, name)
		_ = os.Mkdir(d, 0o755)
		if _, err := Unpack(tarOf(t, entries...), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	l1 := mk("l1",
		entry{name: "a/x", body: "x1"}, entry{name: "a/y", body: "y1"},
		entry{name: "b/old", body: "old"}, entry{name: "b/sub/deep", body: "deep"},
		entry{name: "c/keep", body: "k"}, entry{name: "file", body: "v1"})
	l2 := mk("l2",
		entry{name: "a/.wh.x"},
		entry{name: "b/.wh..wh..opq"}, entry{name: "b/new", body: "new"},
		entry{name: "file", body: "v2"})
	l3 := mk("l3", entry{name: "c/.wh.keep"}, entry{name: "a/x", body: "x3"})

	for _, c := range []struct {
		name   string
		layers []string
		want   map[string]string // path → content ("" for a directory)
		absent []string
	}{
		{"two layers", []string{l1, l2},
			map[string]string{"a/y": "y1", "b/new": "new", "c/keep": "k", "file": "v2"},
			[]string{"a/x", "b/old", "b/sub"}},
		{"three layers", []string{l1, l2, l3},
			map[string]string{"a/x": "x3", "a/y": "y1", "b/new": "new", "file": "v2"},
			[]string{"b/old", "c/keep"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			upper, work, target := filepath.Join(d, "upper"), filepath.Join(d, "work"), filepath.Join(d, "rootfs")
			for _, p := range []string{upper, work, target} {
				_ = os.Mkdir(p, 0o755)
			}
			if err := Mount(c.layers, upper, work, target); err != nil {
				t.Fatal(err)
			}
			defer Unmount(target)
			for p, want := range c.want {
				if b, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", p, b, err, want)
				}
			}
			for _, p := range c.absent {
				if _, err := os.Lstat(filepath.Join(target, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s is visible: %v", p, err)
				}
			}
			// Writes land in the container's upper directory, not in a layer.
			if err := os.WriteFile(filepath.Join(target, "file"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(upper, "file")); string(b) != "mine" {
				t.Errorf("upper/file = %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(l2, "file")); string(b) != "v2" {
				t.Errorf("a write reached the layer: %q", b)
			}
		})
	}

	t.Run("read-only, layers alone", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "ro")
		_ = os.Mkdir(target, 0o755)
		if err := Mount([]string{l1, l2}, "", "", target); err != nil {
			t.Fatal(err)
		}
		defer Unmount(target)
		if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write to a read-only layer mount: %v, want EROFS", err)
		}
	})
}
