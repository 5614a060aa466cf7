package usage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1000)
	must(os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	write("sub/c", 10)
	must(os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "a2")))
	must(os.Symlink("a", filepath.Join(dir, "s")))
	write("empty", 0)
	must(os.Truncate(filepath.Join(dir, "empty"), 0))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	must(f.Truncate(1 << 20))
	must(f.Close())
	// root, a (= b = sub/a2), sub, sub/c, s, empty, sparse
	const wantBytes = 1000 + 10 + 1<<20
	wantInodes := uint64(7)

	if !mountVolume(t, filepath.Join(dir, "volume")) {
		wantInodes++ // the volume's directory, on the layer's filesystem
	}

	gotBytes, gotInodes, err := DirUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotBytes != wantBytes || gotInodes != wantInodes {
		t.Errorf("DirUsage = %d bytes, %d inodes; want %d, %d", gotBytes, gotInodes, wantBytes, wantInodes)
	}
	if _, _, err := DirUsage(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DirUsage of a missing directory = %v, want ErrNotExist", err)
	}
}

// mountVolume mounts a tmpfs with a file in it at dir, when the test may
// mount: DirUsage must not count it, nor the mount point. It reports
// whether it mounted; if not, dir is left an empty directory.
func mountVolume(t *testing.T, dir string) bool {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: mount points are not checked")
		return false
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Logf("mounting a tmpfs: %v; mount points are not checked", err)
		return false
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "data"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	return true
}
