package layer

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// escapeTree builds, in a temp dir, an image-like tree whose links try
// every way out: absolute, climbing, through a linked directory, to a
// sibling on the host. Each directory holds an ID file naming it; the
// sibling "outside" (the host) holds one that says HOST.
func escapeTree(t testing.TB) (root, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, outside = filepath.Join(base, "image"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside, root + "/etc", root + "/data", root + "/nest", root + outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		root + "/ID": "root", root + "/etc/ID": "etc", root + "/data/file": "data",
		root + outside + "/ID": "mirror", outside + "/ID": "HOST",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs": "/", "etcabs": "/etc", "up": "../../..", "updeep": strings.Repeat("../", 40),
		"hop": "nest", "nest/out": "../../../..", "nest/abs": "/etc", "outside": outside,
		"loop": "loop", "dangle": "/no/such/dir", "file": "data/file", "upfile": "../../data/file",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func openRoot(t testing.TB, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// resolvedPath is where the kernel says an O_PATH descriptor points.
func resolvedPath(t testing.TB, f *os.File) string {
	t.Helper()
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every way out of the tree resolves inside it, to what the link means
// when the tree is "/"; what is not there is a SubPathError.
func TestResolveInRoot(t *testing.T) {
	root, outside := escapeTree(t)
	r := openRoot(t, root)
	for _, c := range []struct {
		sub, want string // want: the path inside root ("" = root), or the error reason
		err       bool
	}{
		{sub: "", want: ""},
		{sub: ".", want: ""},
		{sub: "data", want: "/data"},
		{sub: "data/file", want: "/data/file"},
		{sub: "abs", want: ""},
		{sub: "etcabs", want: "/etc"},
		{sub: "up", want: ""},
		{sub: "updeep", want: ""},
		{sub: "hop/out", want: ""},
		{sub: "hop/out/etc", want: "/etc"},
		{sub: "hop/abs", want: "/etc"},
		{sub: "outside", want: outside},
		{sub: "../../outside", want: outside},
		{sub: "../../data", want: "/data"},
		{sub: "/etc", want: "/etc"},
		{sub: "file", want: "/data/file"},
		{sub: "upfile", want: "/data/file"},
		{sub: "fifo", want: "/fifo"},
		{sub: "missing", want: "does not exist", err: true},
		{sub: "data/file/x", want: "does not exist", err: true},
		{sub: "dangle", want: "does not exist", err: true},
		{sub: "loop", want: "has too many levels of symbolic links", err: true},
		{sub: "a\x00b", want: "contains a NUL byte", err: true},
	} {
		f, err := ResolveInRoot(r, c.sub)
		var spe *SubPathError
		switch {
		case c.err && (!errors.As(err, &spe) || spe.Reason != c.want):
			t.Errorf("%q: %v, want SubPathError %q", c.sub, err, c.want)
		case c.err:
		case err != nil:
			t.Errorf("%q: %v", c.sub, err)
		default:
			if got := resolvedPath(t, f); got != root+c.want {
				t.Errorf("%q resolves to %s, want %s", c.sub, got, root+c.want)
			}
			f.Close()
		}
	}
}

// FuzzResolveInRoot: whatever the sub path, ResolveInRoot returns a
// descriptor inside the root or an error, and never panics.
func FuzzResolveInRoot(f *testing.F) {
	for _, s := range []string{"", ".", "..", "/", "abs", "etcabs/ID", "up", "updeep/etc", "hop/out", "hop/out/../../outside",
		"outside/ID", "../outside/ID", "nest/../../outside", "loop", "dangle", "fifo/x", "//etc//", "a\x00b",
		"data/file/", strings.Repeat("up/", 50), strings.Repeat("a/", 3000)} {
		f.Add(s)
	}
	root, outside := escapeTree(f)
	r := openRoot(f, root)
	f.Fuzz(func(t *testing.T, sub string) {
		got, err := ResolveInRoot(r, sub)
		if err != nil {
			return
		}
		defer got.Close()
		p := resolvedPath(t, got)
		if p != root && !strings.HasPrefix(p, root+"/") {
			t.Fatalf("%q resolved to %s, outside %s", sub, p, root)
		}
		if strings.HasPrefix(p, outside+"/") || p == outside {
			t.Fatalf("%q resolved to the host's %s", sub, p)
		}
	})
}

// An image volume is a clone of what the sub path resolves to inside the
// image: never the host's, read-only, nosuid and nodev; a sub path the
// image cannot give leaves nothing behind.
func TestMountVolume(t *testing.T) {
	needRoot(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "ID"), []byte("HOST"), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := strings.TrimPrefix(hostDir, "/")
	entries := []entry{
		{name: "ID", body: "root"},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755}, {name: "etc/ID", body: "etc"},
		{name: "data/", typ: tar.TypeDir, mode: 0o755}, {name: "data/file", body: "data"},
		{name: mirror + "/ID", body: "mirror"},
		{name: "abs", typ: tar.TypeSymlink, link: "/"},
		{name: "etcabs", typ: tar.TypeSymlink, link: "/etc"},
		{name: "up", typ: tar.TypeSymlink, link: "../../.."},
		{name: "nest/", typ: tar.TypeDir, mode: 0o755},
		{name: "nest/out", typ: tar.TypeSymlink, link: "../../../.."},
		{name: "hop", typ: tar.TypeSymlink, link: "nest"},
		{name: "host", typ: tar.TypeSymlink, link: hostDir},
		{name: "fifo", typ: tar.TypeFifo},
		{name: "null", typ: tar.TypeChar, major: 1},
	}
	base := t.TempDir()
	l1, l2 := filepath.Join(base, "l1"), filepath.Join(base, "l2")
	for i, l := range []string{l1, l2} {
		if err := os.Mkdir(l, 0o755); err != nil {
			t.Fatal(err)
		}
		// One layer, then the same split over two: a bind mount and an
		// overlay are both staged.
		part := entries
		if i == 1 {
			part = entries[:4]
		}
		if _, err := Unpack(tarOf(t, part...), l, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	l3 := filepath.Join(base, "l3")
	if err := os.Mkdir(l3, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(tarOf(t, entries[4:]...), l3, Limits{}); err != nil {
		t.Fatal(err)
	}
	for name, layers := range map[string][]string{"one layer": {l1}, "overlay": {l2, l3}} {
		t.Run(name, func(t *testing.T) {
			for _, c := range []struct {
				sub, want string // want: the content of ID (or of the file) in the volume, or the error reason
				err       bool
			}{
				{sub: "", want: "root"},
				{sub: "abs", want: "root"},
				{sub: "etcabs", want: "etc"},
				{sub: "up", want: "root"},
				{sub: "hop/out", want: "root"},
				{sub: "hop/out/etc", want: "etc"},
				{sub: "host", want: "mirror"},
				{sub: "data/file", want: "data"},
				{sub: "missing", want: "does not exist", err: true},
				{sub: "fifo", want: "is a fifo, not a directory or a regular file", err: true},
				{sub: "null", want: "is a character device, not a directory or a regular file", err: true},
			} {
				dir := t.TempDir()
				stage, target := filepath.Join(dir, "stage"), filepath.Join(dir, "vol")
				err := MountVolume(layers, stage, c.sub, target)
				if _, serr := os.Lstat(stage); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("%q: the stage is still there: %v", c.sub, serr)
				}
				var spe *SubPathError
				if c.err {
					if !errors.As(err, &spe) || spe.Reason != c.want {
						t.Errorf("%q: %v, want SubPathError %q", c.sub, err, c.want)
					}
					if _, serr := os.Lstat(target); !errors.Is(serr, os.ErrNotExist) {
						t.Errorf("%q: the target is still there: %v", c.sub, serr)
					}
					continue
				}
				if err != nil {
					t.Errorf("%q: %v", c.sub, err)
					continue
				}
				read := filepath.Join(target, "ID")
				if strings.Contains(c.sub, "file") {
					read = target
				}
				if b, err := os.ReadFile(read); err != nil || string(b) != c.want {
					t.Errorf("%q: volume holds %q, %v; want %q", c.sub, b, err, c.want)
				}
				var st unix.Statfs_t
				if err := unix.Statfs(target, &st); err != nil {
					t.Fatal(err)
				}
				if want := int64(unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV); st.Flags&want != want {
					t.Errorf("%q: mount flags %#x, want ro,nosuid,nodev (%#x)", c.sub, st.Flags, want)
				}
				if err := Unmount(target); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMountVolume measures an image volume's mount (stage, resolve,
// clone, attach, unstage, then unmount) against the plain read-only
// overlay mount it replaced, over two layers.
func BenchmarkMountVolume(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	base := b.TempDir()
	var layers []string
	for i, files := range [][]entry{{{name: "data/file", body: "x"}}, {{name: "etc/ID", body: "etc"}}} {
		l := filepath.Join(base, "l"+strconv.Itoa(i))
		if err := os.Mkdir(l, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Unpack(tarOf(b, files...), l, Limits{}); err != nil {
			b.Fatal(err)
		}
		layers = append(layers, l)
	}
	target := filepath.Join(base, "vol")
	b.Run("overlay only", func(b *testing.B) {
		if err := os.Mkdir(target, 0o755); err != nil {
			b.Fatal(err)
		}
		defer os.Remove(target)
		for b.Loop() {
			if err := Mount(layers, "", "", target); err != nil {
				b.Fatal(err)
			}
			if err := Unmount(target); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sub := range []string{"", "data"} {
		b.Run("MountVolume sub="+sub, func(b *testing.B) {
			for b.Loop() {
				if err := MountVolume(layers, filepath.Join(base, "stage"), sub, target); err != nil {
					b.Fatal(err)
				}
				if err := Unmount(target); err != nil {
					b.Fatal(err)
				}
				if err := os.Remove(target); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
