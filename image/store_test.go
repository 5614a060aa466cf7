package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/internal/errdefs"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fakeImage stores blobs for a small image (no layers need unpacking: the
// store's bookkeeping is under test) and commits it as ref.
func fakeImage(t *testing.T, s *Store, ref, cfg string, layers ...string) *Image {
	t.Helper()
	img := &Image{ID: digestOf([]byte(cfg)), Manifest: digestOf([]byte("manifest of " + cfg)), Pulled: time.Now()}
	for _, d := range []string{cfg, "manifest of " + cfg} {
		if err := s.WriteBlob(digestOf([]byte(d)), strings.NewReader(d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range layers {
		d := digestOf([]byte(l))
		if err := s.WriteBlob(d, strings.NewReader(l)); err != nil {
			t.Fatal(err)
		}
		chain := digestOf([]byte("chain " + l))
		if err := os.MkdirAll(s.LayerDir(chain), 0o755); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.idx.Layers[chain] = LayerStats{Bytes: int64(len(l)), Inodes: 1}
		s.mu.Unlock()
		img.Layers = append(img.Layers, Layer{Digest: d, DiffID: d, ChainID: chain, Size: int64(len(l))})
	}
	r, err := ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(img, r, DigestString(r.Name(), img.Manifest)); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestStoreWriteBlobVerifies(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlob(digestOf([]byte("good")), strings.NewReader("evil")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("WriteBlob of wrong content: %v, want ErrDigestMismatch", err)
	}
	if s.HasBlob(digestOf([]byte("good"))) {
		t.Error("a blob that failed verification was stored")
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if err := s.WriteBlob("md5:abc", strings.NewReader("")); err == nil {
		t.Error("an unsupported digest was accepted")
	}
}

// Removing an image by any one of its names removes it with every tag,
// across repositories (cri-api v0.37 api.proto, RemoveImage), and its
// content.
func TestStoreRemoveByOneTag(t *testing.T) {
	for _, by := range []string{"registry.k8s.io/app:v1", "docker.io/other/app:latest", "id", "digest"} {
		t.Run(by, func(t *testing.T) {
			s, err := OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			a := fakeImage(t, s, "registry.k8s.io/app:v1", "config a", "layer a")
			fakeImage(t, s, "registry.k8s.io/app:v2", "config a")
			fakeImage(t, s, "docker.io/other/app:latest", "config a")
			spec := map[string]string{"id": a.ID, "digest": "registry.k8s.io/app@" + a.Manifest}[by]
			if spec == "" {
				spec = by
			}
			if err := s.Remove(spec); err != nil {
				t.Fatal(err)
			}
			if l := s.List(); len(l) != 0 {
				t.Errorf("Remove(%q) left %d image(s): %v", spec, len(l), l[0].RepoTags)
			}
			for _, ref := range []string{"registry.k8s.io/app:v1", "registry.k8s.io/app:v2", "docker.io/other/app:latest", a.ID} {
				if _, err := s.Resolve(ref); !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("Resolve(%q) after Remove(%q): %v", ref, spec, err)
				}
			}
			if s.HasBlob(a.ID) {
				t.Error("the config blob outlived the image")
			}
		})
	}
}

func TestStoreResolveAndRemove(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := fakeImage(t, s, "registry.k8s.io/app:v1", "config a", "layer base", "layer a")
	fakeImage(t, s, "registry.k8s.io/app:v2", "config a")
	b := fakeImage(t, s, "docker.io/library/busybox:latest", "config b", "layer base", "layer b")

	for spec, want := range map[string]string{
		a.ID: a.ID, a.ID[7:]: a.ID, a.ID[7:19]: a.ID, "registry.k8s.io/app:v1": a.ID, "registry.k8s.io/app:v2": a.ID,
		"busybox": b.ID, "docker.io/library/busybox": b.ID, "busybox@" + b.Manifest: b.ID,
	} {
		got, err := s.Resolve(spec)
		if err != nil || got.ID != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", spec, got, err, want)
		}
	}
	if _, err := s.Resolve("registry.k8s.io/app:v3"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Resolve of an unknown tag: %v", err)
	}

	// A tag that moves to another image leaves the first.
	fakeImage(t, s, "registry.k8s.io/app:v2", "config b")
	if got, _ := s.Resolve(a.ID); !slices.Equal(got.RepoTags, []string{"registry.k8s.io/app:v1"}) {
		t.Errorf("tags of a after v2 moved: %v", got.RepoTags)
	}

	// A container's lease keeps a's layers past a's removal.
	dirs, err := s.Lease("ctr1", a.ID)
	if err != nil || len(dirs) != 2 {
		t.Fatalf("Lease = %v, %v", dirs, err)
	}
	if err := s.Remove("registry.k8s.io/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(a.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("removing a's last tag kept it: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("leased layer %s deleted: %v", d, err)
		}
	}
	if s.HasBlob(a.ID) {
		t.Error("a's config blob outlived a")
	}
	if err := s.Release("ctr1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[1]); !os.IsNotExist(err) {
		t.Errorf("a's own layer outlived its lease: %v", err)
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Errorf("the base layer b still uses was deleted: %v", err)
	}
	// Idempotent.
	if err := s.Remove(a.ID); err != nil {
		t.Errorf("second remove: %v", err)
	}

	// Reopened, the store has the same images and nothing else.
	s2, err := OpenStore(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 1 || l[0].ID != b.ID || !slices.Equal(l[0].RepoTags, []string{"docker.io/library/busybox:latest", "registry.k8s.io/app:v2"}) {
		t.Errorf("after reopen: %+v", l)
	}
	bytes, inodes := s2.Usage()
	if bytes == 0 || inodes == 0 {
		t.Errorf("usage %d %d", bytes, inodes)
	}
}

// What a crash leaves (temporary files, layers and blobs no record holds)
// is gone when the store opens again.
func TestStoreOpenCleansUp(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	keep := fakeImage(t, s, "registry.k8s.io/keep:1", "config keep", "layer keep")
	_ = os.WriteFile(filepath.Join(dir, "tmp", "blob-123"), []byte("partial"), 0o600)
	_ = os.MkdirAll(filepath.Join(dir, "tmp", "unpack-456", "etc"), 0o755)
	_ = os.MkdirAll(s.LayerDir(digestOf([]byte("orphan layer"))), 0o755)
	_ = s.WriteBlob(digestOf([]byte("orphan blob")), strings.NewReader("orphan blob"))

	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp after open: %v", tmp)
	}
	if s2.HasBlob(digestOf([]byte("orphan blob"))) {
		t.Error("orphan blob kept")
	}
	if _, err := os.Stat(s2.LayerDir(digestOf([]byte("orphan layer")))); !os.IsNotExist(err) {
		t.Error("orphan layer kept")
	}
	if _, err := s2.Resolve(keep.ID); err != nil || !s2.HasBlob(keep.Layers[0].Digest) {
		t.Errorf("the committed image lost something: %v", err)
	}
}

// When the index cannot be written (a full disk), the change is undone in
// memory too, and nothing the index on disk names is deleted: a failed
// pull lists no image, a failed lease holds no layer, a failed removal
// keeps the image whole.
func TestStoreFailedWriteChangesNothing(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := fakeImage(t, s, "registry.k8s.io/app:v1", "config a", "layer a")
	onDisk, err := os.ReadFile(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	// The index's path becomes a directory that is not empty: the write's
	// final rename fails, as a write on a full disk would.
	if err := os.Remove(s.indexPath()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.indexPath(), "x"), 0o700); err != nil {
		t.Fatal(err)
	}

	r, _ := ParseRef("registry.k8s.io/app:v2")
	b := &Image{ID: digestOf([]byte("config b")), Manifest: digestOf([]byte("manifest b")), Pulled: time.Now()}
	if err := s.Commit(b, r, ""); err == nil {
		t.Error("Commit succeeded without writing the index")
	}
	if _, err := s.Resolve("registry.k8s.io/app:v2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the image whose commit failed resolves: %v", err)
	}
	if _, err := s.Lease("c1", a.ID); err == nil {
		t.Error("Lease succeeded without writing the index")
	}
	if err := s.Remove(a.ID); err == nil {
		t.Error("Remove succeeded without writing the index")
	}
	if _, err := s.Resolve(a.ID); err != nil {
		t.Errorf("the image whose removal failed is gone: %v", err)
	}
	if !s.HasBlob(a.ID) {
		t.Error("a failed removal deleted the image's config")
	}
	if _, err := os.Stat(s.LayerDir(a.Layers[0].ChainID)); err != nil {
		t.Errorf("a failed removal deleted the image's layer: %v", err)
	}

	// Once the index can be written again, memory is what the disk says.
	if err := os.RemoveAll(s.indexPath()); err != nil {
		t.Fatal(err)
	}
	s.Collect()
	again, err := os.ReadFile(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, onDisk) {
		t.Errorf("the index after the failed writes:\n%s\nwant the one before them:\n%s", again, onDisk)
	}
}
