package image

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "crypto/sha256" // go-digest's sha256 needs the hash linked in
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	godigest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
)

// ErrDigestMismatch is wrapped by errors of content that does not hash to
// the digest it was fetched under.
var ErrDigestMismatch = errors.New("digest mismatch")

// Layer is one layer of an image, bottom first.
type Layer struct {
	Digest    string `json:"digest"` // of the compressed blob
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size"`
	DiffID    string `json:"diffID"`  // of the uncompressed tar
	ChainID   string `json:"chainID"` // names the unpacked directory
}

// Image is one stored image. Values returned by the store are copies.
type Image struct {
	ID          string    `json:"id"` // the config's digest
	RepoTags    []string  `json:"repoTags,omitempty"`
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Size        int64     `json:"size"`
	Manifest    string    `json:"manifest"`
	Index       string    `json:"index,omitempty"`
	Layers      []Layer   `json:"layers"`
	User        string    `json:"user,omitempty"`
	Pinned      bool      `json:"pinned,omitempty"`
	Pulled      time.Time `json:"pulled"`
}

func (i *Image) clone() *Image {
	c := *i
	c.RepoTags = slices.Clone(i.RepoTags)
	c.RepoDigests = slices.Clone(i.RepoDigests)
	c.Layers = slices.Clone(i.Layers)
	return &c
}

// LayerStats is what an unpacked layer holds on disk.
type LayerStats struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

type index struct {
	Version int                   `json:"version"`
	Images  map[string]*Image     `json:"images"`
	Layers  map[string]LayerStats `json:"layers"` // by chain ID
	Leases  map[string][]string   `json:"leases"` // owner → chain IDs
}

const indexVersion = 1

func (x *index) clone() *index {
	c := &index{Version: x.Version, Images: make(map[string]*Image, len(x.Images)), Layers: maps.Clone(x.Layers), Leases: make(map[string][]string, len(x.Leases))}
	for id, img := range x.Images {
		c.Images[id] = img.clone()
	}
	for owner, chains := range x.Leases {
		c.Leases[owner] = slices.Clone(chains)
	}
	return c
}

// Store keeps blobs, unpacked layers and image records. Its methods are
// safe for concurrent use.
type Store struct {
	dir string

	mu  sync.Mutex
	idx *index
	// pending counts the blobs and chain IDs that pulls in flight are
	// writing: garbage collection must not take them before the pull
	// commits its image.
	pending map[string]int
}

// OpenStore opens (or creates) the store in dir. What a crash left
// half-done goes: temporary files, and blobs and layers no image or lease
// holds.
func OpenStore(dir string) (*Store, error) {
	// For root only: overlayfs reaches the layers with the credentials of
	// huskd, which mounts it, and a layer may hold an image's setuid
	// binaries (cmd/huskd's dirs.go sets the modes of existing ones).
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	s := &Store{dir: dir, pending: map[string]int{}, idx: &index{
		Version: indexVersion, Images: map[string]*Image{}, Layers: map[string]LayerStats{}, Leases: map[string][]string{},
	}}
	b, err := os.ReadFile(s.indexPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, s.idx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.indexPath(), err)
		}
		if s.idx.Version != indexVersion {
			return nil, fmt.Errorf("%s: version %d, want %d", s.indexPath(), s.idx.Version, indexVersion)
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, e := range tmp {
		klog.V(2).InfoS("Removing an interrupted download", "path", e.Name())
		if err := os.RemoveAll(filepath.Join(dir, "tmp", e.Name())); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	trash := s.moveToTrash(s.unusedLocked())
	s.mu.Unlock()
	removeAll(trash)
	return s, nil
}

func (s *Store) indexPath() string { return filepath.Join(s.dir, "index.json") }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.dir, "blobs", "sha256", hexOf(digest))
}

// LayerDir is the directory of an unpacked layer, an overlay lowerdir.
func (s *Store) LayerDir(chainID string) string {
	return filepath.Join(s.dir, "layers", hexOf(chainID))
}

func (s *Store) saveLocked() error {
	b, err := json.Marshal(s.idx)
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(s.indexPath(), b, 0o600); err != nil {
		return fmt.Errorf("writing the image index: %w", err)
	}
	return nil
}

// updateLocked changes the index and writes it out as one step. When the
// write fails (a full disk) the index in memory is put back as it was:
// memory never holds a record the disk lacks, so a pull or a lease that
// failed leaves nothing behind. With collect, what the changed index no
// longer holds is moved to tmp/ only after that index is written, never
// content the index on disk still names; the caller deletes the returned
// paths outside the lock.
func (s *Store) updateLocked(collect bool, change func()) (trash []string, err error) {
	prev := s.idx.clone()
	change()
	var unused []string
	if collect {
		unused = s.unusedLocked()
	}
	if err := s.saveLocked(); err != nil {
		s.idx = prev
		return nil, err
	}
	return s.moveToTrash(unused), nil
}

// validDigest says whether d is a digest the store can hold: a valid
// sha256 digest in its canonical form (go-digest's check: the algorithm,
// then 64 lower-case hex digits), the only algorithm blob paths and the
// pull's verification know.
func validDigest(d string) bool {
	p, err := godigest.Parse(d)
	return err == nil && p.Algorithm() == godigest.SHA256
}

// hold marks keys (blob digests, chain IDs) as in use by a pull until the
// returned func is called.
func (s *Store) hold(keys ...string) func() {
	s.mu.Lock()
	for _, k := range keys {
		s.pending[k]++
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		for _, k := range keys {
			if s.pending[k]--; s.pending[k] <= 0 {
				delete(s.pending, k)
			}
		}
		s.mu.Unlock()
	}
}

// HasBlob says whether the blob is stored.
func (s *Store) HasBlob(digest string) bool {
	_, err := os.Stat(s.blobPath(digest))
	return err == nil
}

// WriteBlob stores what r yields under digest, if it hashes to digest.
// Nothing is stored otherwise.
func (s *Store) WriteBlob(digest string, r io.Reader) error {
	if !validDigest(digest) {
		return fmt.Errorf("unsupported digest %q", digest)
	}
	if s.HasBlob(digest) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := godigest.SHA256.Digester()
	w := bufio.NewWriterSize(io.MultiWriter(f, h.Hash()), 256<<10)
	_, err = io.Copy(w, r)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := h.Digest().String(); got != digest {
		return fmt.Errorf("blob %s: %w: content hashes to %s", digest, ErrDigestMismatch, got)
	}
	faults.Point("PullImage/blob-in-tmp")
	return os.Rename(f.Name(), s.blobPath(digest))
}

// ReadBlob returns a stored blob.
func (s *Store) ReadBlob(digest string) ([]byte, error) {
	if !validDigest(digest) {
		return nil, fmt.Errorf("unsupported digest %q", digest)
	}
	return os.ReadFile(s.blobPath(digest))
}

// HasLayer says whether the layer with this chain ID is unpacked.
func (s *Store) HasLayer(chainID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.idx.Layers[chainID]
	return ok
}

// UnpackLayer unpacks the stored blob into the layer directory of chainID,
// checking that its uncompressed content hashes to diffID. A layer that
// fails either check, holds an unsafe entry or goes over lim leaves
// nothing.
func (s *Store) UnpackLayer(chainID, blobDigest, diffID string, lim layer.Limits) error {
	if s.HasLayer(chainID) {
		return nil
	}
	f, err := os.Open(s.blobPath(blobDigest))
	if err != nil {
		return err
	}
	defer f.Close()
	tarStream, closeFn, err := decompress(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return fmt.Errorf("layer %s: %w", blobDigest, err)
	}
	defer closeFn()

	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The layer's root directory is the root of an image volume whose top
	// layer it is (an overlay without an upper directory takes its top
	// layer's): readable by the container's users, as an image's root is.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	h := godigest.SHA256.Digester()
	// The bound covers the whole uncompressed stream, read to its end for
	// the diff ID: a small blob can decompress to anything.
	tee := io.TeeReader(lim.Stream(tarStream), h.Hash())
	stats, err := layer.Unpack(tee, tmp, lim)
	if err != nil {
		return fmt.Errorf("layer %s: %w", blobDigest, err)
	}
	// The diff ID covers the whole stream, tar padding included.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("layer %s: %w", blobDigest, err)
	}
	if got := h.Digest().String(); got != diffID {
		return fmt.Errorf("layer %s: %w: uncompressed content hashes to %s, the image says %s", blobDigest, ErrDigestMismatch, got, diffID)
	}
	faults.Point("PullImage/layer-in-tmp")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.idx.Layers[chainID]; ok {
		return nil
	}
	if err := os.Rename(tmp, s.LayerDir(chainID)); err != nil {
		return err
	}
	s.idx.Layers[chainID] = LayerStats{Bytes: stats.Bytes, Inodes: stats.Inodes}
	return nil
}

// decompress recognises gzip and zstd by their magic numbers; anything
// else is read as an uncompressed tar.
func decompress(r *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return r, func() {}, nil
}

// Commit records an image pulled as ref (tag and digest) whose blobs and
// layers are all stored, and writes the record out. A tag moves to this
// image from any other that had it.
func (s *Store) Commit(img *Image, ref Ref, repoDigest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.updateLocked(false, func() {
		cur, ok := s.idx.Images[img.ID]
		if !ok {
			cur = img.clone()
			cur.RepoTags, cur.RepoDigests = nil, nil
			s.idx.Images[img.ID] = cur
		}
		if tag := ref.TagString(); tag != "" {
			for _, other := range s.idx.Images {
				if other != cur {
					other.RepoTags = slices.DeleteFunc(other.RepoTags, func(t string) bool { return t == tag })
				}
			}
			if !slices.Contains(cur.RepoTags, tag) {
				cur.RepoTags = append(cur.RepoTags, tag)
			}
		}
		if repoDigest != "" && !slices.Contains(cur.RepoDigests, repoDigest) {
			cur.RepoDigests = append(cur.RepoDigests, repoDigest)
		}
		cur.Pulled = img.Pulled
	})
	if err != nil {
		return err
	}
	// Make the unpacked layers and the index durable before kubelet is told
	// the image is there.
	if fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		_ = unix.Syncfs(fd)
		unix.Close(fd)
	}
	return nil
}

// Resolve finds an image by ID, unique ID prefix, tag or digest reference.
func (s *Store) Resolve(spec string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.resolveLocked(spec)
	if err != nil {
		return nil, err
	}
	return img.clone(), nil
}

func (s *Store) resolveLocked(spec string) (*Image, error) {
	if id, ok := asID(spec); ok {
		if img := s.idx.Images[id]; img != nil {
			return img, nil
		}
		return nil, errdefs.NotFound("image %q not found", spec)
	}
	if ref, err := ParseRef(spec); err == nil {
		for _, img := range s.idx.Images {
			if d := ref.Digest(); d != "" {
				if slices.Contains(img.RepoDigests, DigestString(ref.Name(), d)) {
					return img, nil
				}
			} else if slices.Contains(img.RepoTags, ref.TagString()) {
				return img, nil
			}
		}
	}
	// A unique prefix of an ID, as crictl and docker accept.
	prefix := strings.TrimPrefix(spec, "sha256:")
	if len(prefix) >= 3 && strings.Trim(prefix, "0123456789abcdef") == "" {
		var found *Image
		for id, img := range s.idx.Images {
			if strings.HasPrefix(hexOf(id), prefix) {
				if found != nil {
					return nil, errdefs.InvalidArgument("image", "%q matches more than one image", spec)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, errdefs.NotFound("image %q not found", spec)
}

// List returns every image, oldest pull first.
func (s *Store) List() []*Image {
	s.mu.Lock()
	out := make([]*Image, 0, len(s.idx.Images))
	for _, img := range s.idx.Images {
		out = append(out, img.clone())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Pulled.Before(out[j].Pulled) })
	return out
}

// Remove removes the image spec names (an ID, a unique prefix of one, a
// digest or a tag) with all its tags, whichever names it: cri-api v0.37's
// api.proto says removing an image "by a single tag will remove all of its
// tags", even across repositories (kubernetes#135710), so that the image is
// gone from the next ListImages. An unknown image is success. Blobs and
// layers that nothing holds any more are deleted; a container's lease
// keeps its layers.
func (s *Store) Remove(spec string) error {
	s.mu.Lock()
	img, err := s.resolveLocked(spec)
	if errors.Is(err, errdefs.ErrNotFound) {
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	trash, err := s.updateLocked(true, func() { delete(s.idx.Images, img.ID) })
	s.mu.Unlock()
	if err != nil {
		return err
	}
	removeAll(trash)
	klog.InfoS("Image removed", "image", img.ID, "reference", spec, "tags", img.RepoTags)
	return nil
}

// Collect deletes blobs and layers that no image, lease or pull in flight
// holds: what a failed pull fetched.
func (s *Store) Collect() {
	s.mu.Lock()
	trash, err := s.updateLocked(true, func() {})
	s.mu.Unlock()
	if err != nil {
		klog.ErrorS(err, "Collecting unused image content")
	}
	removeAll(trash)
}

// Lease records that owner (a container) uses the layers of image, so that
// they outlive the image's removal. It returns the layer directories,
// bottom first.
func (s *Store) Lease(owner, imageID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.idx.Images[imageID]
	if !ok {
		return nil, errdefs.NotFound("image %q not found", imageID)
	}
	var chains, dirs []string
	for _, l := range img.Layers {
		chains = append(chains, l.ChainID)
		dirs = append(dirs, s.LayerDir(l.ChainID))
	}
	if _, err := s.updateLocked(false, func() { s.idx.Leases[owner] = chains }); err != nil {
		return nil, err
	}
	return dirs, nil
}

// LeaseOwners lists the owners of leases, for recovery to end those of
// containers that no record names.
func (s *Store) LeaseOwners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	owners := make([]string, 0, len(s.idx.Leases))
	for o := range s.idx.Leases {
		owners = append(owners, o)
	}
	return owners
}

// Release ends owner's lease; layers nothing else holds are deleted.
func (s *Store) Release(owner string) error {
	s.mu.Lock()
	if _, ok := s.idx.Leases[owner]; !ok {
		s.mu.Unlock()
		return nil
	}
	trash, err := s.updateLocked(true, func() { delete(s.idx.Leases, owner) })
	s.mu.Unlock()
	removeAll(trash)
	return err
}

// unusedLocked finds blobs and layers that no image, lease or pull in
// flight holds, drops them from the index and returns their paths.
func (s *Store) unusedLocked() (unused []string) {
	usedBlobs, usedLayers := map[string]bool{}, map[string]bool{}
	for _, img := range s.idx.Images {
		for _, d := range []string{img.ID, img.Manifest, img.Index} {
			usedBlobs[d] = true
		}
		for _, l := range img.Layers {
			usedBlobs[l.Digest] = true
			usedLayers[l.ChainID] = true
		}
	}
	for _, chains := range s.idx.Leases {
		for _, c := range chains {
			usedLayers[c] = true
		}
	}
	move := func(p string) { unused = append(unused, p) }
	for chain := range s.idx.Layers {
		if !usedLayers[chain] && s.pending[chain] == 0 {
			delete(s.idx.Layers, chain)
			move(s.LayerDir(chain))
		}
	}
	// Layer directories the index does not know: a crash between unpack
	// and commit.
	dirs, _ := os.ReadDir(filepath.Join(s.dir, "layers"))
	for _, e := range dirs {
		chain := "sha256:" + e.Name()
		if _, ok := s.idx.Layers[chain]; !ok && s.pending[chain] == 0 {
			move(filepath.Join(s.dir, "layers", e.Name()))
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	for _, e := range blobs {
		d := "sha256:" + e.Name()
		if !usedBlobs[d] && s.pending[d] == 0 {
			move(s.blobPath(d))
		}
	}
	return unused
}

// moveToTrash moves paths into the store's tmp directory (a rename takes
// no space), whence the caller deletes them outside the lock.
func (s *Store) moveToTrash(paths []string) (trash []string) {
	for _, p := range paths {
		dst := filepath.Join(s.dir, "tmp", "trash-"+randomHex())
		if err := os.Rename(p, dst); err == nil {
			trash = append(trash, dst)
		} else if !errors.Is(err, os.ErrNotExist) {
			klog.ErrorS(err, "Removing unused image content", "path", p)
		}
	}
	return trash
}

func removeAll(paths []string) {
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			klog.ErrorS(err, "Deleting unused image content", "path", p)
		}
	}
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Usage is what the store holds on disk: blob bytes plus unpacked layer
// bytes, and unpacked inodes plus blob files.
func (s *Store) Usage() (bytes, inodes int64) {
	blobs, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	for _, e := range blobs {
		if fi, err := e.Info(); err == nil {
			bytes += fi.Size()
			inodes++
		}
	}
	s.mu.Lock()
	for _, st := range s.idx.Layers {
		bytes += st.Bytes
		inodes += st.Inodes
	}
	s.mu.Unlock()
	return bytes, inodes
}
