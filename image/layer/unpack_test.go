package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
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
	st, err := Unpack(r, dir, Limits{})
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
	// 9 entries and 5 directories they imply (bin, home, home/user, dev, run).
	if st.Bytes != int64(len("root:x:0:0::/root:/bin/sh\n")+len("elf")+len("hi")+len("bb")) || st.Inodes != 14 {
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
			_, err := Unpack(tarOf(t, c.entries...), dir, Limits{})
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
		if _, err := Unpack(tarOf(t, entries...), d, Limits{}); err != nil {
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

// A layer over its limits fails with ErrLimit, and an error naming the
// configuration key, as soon as it is over.
func TestUnpackLimits(t *testing.T) {
	needRoot(t)
	many := func(n int) []entry {
		var es []entry
		for i := 0; i < n; i++ {
			es = append(es, entry{name: fmt.Sprintf("f%d", i), body: "x"})
		}
		return es
	}
	cases := []struct {
		name    string
		lim     Limits
		entries []entry
		err     string // "" for success
	}{
		{"bytes within", Limits{Bytes: 10}, []entry{{name: "a", body: "12345"}, {name: "b", body: "12345"}}, ""},
		{"bytes over", Limits{Bytes: 9}, []entry{{name: "a", body: "12345"}, {name: "b", body: "12345"}}, "more than 9 bytes ([image] max_layer_bytes)"},
		{"files within", Limits{Files: 5}, many(5), ""},
		{"files over", Limits{Files: 5}, many(6), "more than 5 files ([image] max_layer_files)"},
		{"directories count", Limits{Files: 2}, []entry{{name: "a/", typ: tar.TypeDir}, {name: "b/", typ: tar.TypeDir}, {name: "c/", typ: tar.TypeDir}}, "max_layer_files"},
		{"implied directories count", Limits{Files: 3}, []entry{{name: "a/b/c/d", body: "x"}}, "max_layer_files"},
		{"hard links and whiteouts count", Limits{Files: 2}, []entry{{name: "a", body: "x"}, {name: "b", typ: tar.TypeLink, link: "a"}, {name: ".wh.c"}}, "max_layer_files"},
		{"opaque markers do not", Limits{Files: 2}, []entry{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: "d/f", body: "x"}}, ""},
		{"no limits", Limits{}, many(50), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layer")
			_ = os.Mkdir(dir, 0o755)
			_, err := Unpack(tarOf(t, c.entries...), dir, c.lim)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Unpack = %v, want ErrLimit saying %q", err, c.err)
			}
		})
	}

	// The stream bound covers what no file holds: headers, padding, data
	// after the end of the archive.
	tr := tarOf(t, entry{name: "a", body: "x"})
	stream := make([]byte, tr.Len(), tr.Len()+4096)
	_, _ = tr.Read(stream)
	stream = append(stream, make([]byte, 4096)...)
	n, err := io.Copy(io.Discard, Limits{Bytes: int64(len(stream) - 1)}.Stream(bytes.NewReader(stream)))
	if !errors.Is(err, ErrLimit) || n != int64(len(stream)-1) {
		t.Errorf("Stream over the limit: %d bytes, %v", n, err)
	}
	if n, err := io.Copy(io.Discard, Limits{Bytes: int64(len(stream))}.Stream(bytes.NewReader(stream))); err != nil || n != int64(len(stream)) {
		t.Errorf("Stream at the limit: %d bytes, %v", n, err)
	}
}

// Directories get their own times, whichever order the tar lists things
// in: when the stream leaves a directory, and again when a later entry
// comes back into it or into a directory it implies.
func TestUnpackDirectoryTimes(t *testing.T) {
	needRoot(t)
	t1, t2, t3 := time.Unix(1_100_000_000, 0), time.Unix(1_200_000_000, 0), time.Unix(1_300_000_000, 0)
	dir, _, err := unpackInto(t, tarOf(t,
		entry{name: "./", typ: tar.TypeDir, mode: 0o755, mtime: t3},
		entry{name: "a/", typ: tar.TypeDir, mode: 0o755, mtime: t1},
		entry{name: "a/sub/", typ: tar.TypeDir, mode: 0o755, mtime: t2},
		entry{name: "a/sub/f", body: "1"},
		entry{name: "a/g", body: "1"},
		entry{name: "b/", typ: tar.TypeDir, mode: 0o755, mtime: t2},
		entry{name: "b/f", body: "1"},
		entry{name: "a/late", body: "1"},           // back into a left directory
		entry{name: "b/implied/deep/f", body: "1"}, // directories b only implies
		entry{name: "c/d/f", body: "1"},            // implied by the root
	))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Time{".": t3, "a": t1, "a/sub": t2, "b": t2} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, %v; want %v", name, fi.ModTime(), err, want)
		}
	}
}

// The unpacker's memory does not grow with the number of directories: it
// remembers the directories around the current entry, not every header
// (a header carries its PAX records, up to 1 MiB each).
func TestUnpackMemoryDoesNotGrowWithDirectories(t *testing.T) {
	needRoot(t)
	const dirs, pad = 2000, 64 << 10 // 125 MiB of headers
	pr, pw := io.Pipe()
	var dirBytes atomic.Int64
	go func() {
		cw := &countingWriter{w: pw}
		tw := tar.NewWriter(cw)
		padding := strings.Repeat("p", pad)
		for i := 0; i < dirs; i++ {
			h := &tar.Header{Name: fmt.Sprintf("d%04d/", i), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1, 0),
				Format: tar.FormatPAX, PAXRecords: map[string]string{"husk.padding": padding}}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		dirBytes.Store(cw.n)
		// A last file: the unpacker reads its header only once it is done
		// with every directory.
		_ = tw.WriteHeader(&tar.Header{Name: "last", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: time.Unix(1, 0)})
		_, _ = tw.Write([]byte("x"))
		pw.CloseWithError(tw.Close())
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := &afterBytes{r: pr, at: &dirBytes, fn: func() { runtime.GC(); runtime.ReadMemStats(&after) }}
	dir := filepath.Join(t.TempDir(), "layer")
	_ = os.Mkdir(dir, 0o755)
	if _, err := Unpack(r, dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	if !r.done {
		t.Fatal("the unpacker never read the last entry")
	}
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after %d directories with %d KiB of PAX records each: %+d KiB", dirs, pad>>10, grew>>10)
	if grew > 16<<20 {
		t.Errorf("the heap grew by %d MiB over a layer of %d directories: their headers are kept", grew>>20, dirs)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// afterBytes calls fn once, before the read that goes past the first
// *at bytes.
type afterBytes struct {
	r    io.Reader
	at   *atomic.Int64
	n    int64
	fn   func()
	done bool
}

func (a *afterBytes) Read(p []byte) (int, error) {
	if at := a.at.Load(); !a.done && at > 0 && a.n >= at {
		a.done = true
		a.fn()
	}
	n, err := a.r.Read(p)
	a.n += int64(n)
	return n, err
}

// An entry under a FIFO or a device node the layer made fails the layer
// without opening it: opening a FIFO blocks until a writer comes (never),
// opening a device runs its driver in huskd.
func TestUnpackNeverOpensFIFOsOrDevices(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name    string
		entries []entry
	}{
		{"opaque marker in a FIFO", []entry{{name: "p", typ: tar.TypeFifo}, {name: "p/.wh..wh..opq"}}},
		{"whiteout in a FIFO", []entry{{name: "p", typ: tar.TypeFifo}, {name: "p/.wh.x"}}},
		{"device in a FIFO", []entry{{name: "p", typ: tar.TypeFifo}, {name: "p/null", typ: tar.TypeChar, major: 1}}},
		{"whiteout in a device", []entry{{name: "d", typ: tar.TypeChar, major: 1, mode: 0o666}, {name: "d/.wh.x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, _, err := unpackInto(t, tarOf(t, c.entries...))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a directory") {
					t.Errorf("Unpack = %v, want a refusal: not a directory", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Unpack is stuck opening what the layer made")
			}
		})
	}
}
