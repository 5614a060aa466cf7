package layer

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// FuzzUnpack feeds tar streams to the unpacker, into a root beside a
// directory it must never touch: it never panics, never writes outside its
// root, and never creates more files or bytes than its limits allow.
func FuzzUnpack(f *testing.F) {
	seeds := [][]entry{
		{{name: "a/", typ: tar.TypeDir}, {name: "a/f", body: "x"}, {name: "a/.wh.g"}, {name: "a/.wh..wh..opq"}},
		{{name: "../outside/f", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/f", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/tmp/husk-fuzz-escape", body: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../outside/keep"}},
		{{name: "f", body: "x"}, {name: "h", typ: tar.TypeLink, link: "f"}, {name: "f/", typ: tar.TypeDir}},
		{{name: "d", typ: tar.TypeChar, major: 1}, {name: "p", typ: tar.TypeFifo}},
		{{name: "x/y/z/w", body: "deep"}, {name: "x/", typ: tar.TypeDir}, {name: "x/y/late", body: "1"}},
		{{name: "big", body: string(make([]byte, 5000))}},
	}
	for _, s := range seeds {
		f.Add(tarBytes(f, s))
	}
	lim := Limits{Bytes: 4096, Files: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
		for _, d := range []string{root, outside} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		st, _ := Unpack(bytes.NewReader(data), root, lim)

		if names := dirNames(t, base); !slices.Equal(names, []string{"outside", "root"}) {
			t.Fatalf("beside the root: %v", names)
		}
		if names := dirNames(t, outside); !slices.Equal(names, []string{"keep"}) {
			t.Fatalf("in the directory beside the root: %v", names)
		}
		if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "keep" {
			t.Fatalf("a file outside the root changed: %q, %v", b, err)
		}
		if st.Bytes > lim.Bytes {
			t.Fatalf("stats say %d bytes, over the %d limit", st.Bytes, lim.Bytes)
		}
		var files, bytes int64
		seen := map[uint64]bool{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			files++
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if s, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && !seen[s.Ino] {
				seen[s.Ino] = true
				bytes += fi.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files > lim.Files || bytes > lim.Bytes {
			t.Fatalf("the root holds %d files and %d bytes, over the limits %+v", files, bytes, lim)
		}
		// t.TempDir's cleanup needs to enter what the layer made unreadable.
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

func tarBytes(t testing.TB, entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)),
			ModTime: time.Unix(1_600_000_000, 0), Devmajor: e.major, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
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
	return buf.Bytes()
}

func dirNames(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
