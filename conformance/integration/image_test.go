package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
	"github.com/huskrt/husk/image/layer"
)

// imageHuskd starts a registry and a huskd that pulls from it through
// hosts.toml mirrors for registry.k8s.io and docker.io.
func imageHuskd(t testing.TB, extraConfig string) (*huskdtest.Huskd, *images.Registry) {
	t.Helper()
	reg := images.StartRegistry(t)
	dir := reg.MirrorConfig(t, "registry.k8s.io", "docker.io")
	h := huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[registry]\nconfig_path = %q\n%s", dir, extraConfig))...)
	return h, reg
}

func spec(s string) *runtime.ImageSpec { return &runtime.ImageSpec{Image: s} }

func digestOf(t *testing.T, img v1.Image) (manifest, config string) {
	t.Helper()
	m, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return m.String(), c.String()
}

func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	img, err := images.Busybox(bb, images.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type verboseImage struct {
	ID        string          `json:"id"`
	Manifest  json.RawMessage `json:"manifest"`
	ImageSpec struct {
		Config struct {
			Cmd []string `json:"Cmd"`
		} `json:"config"`
	} `json:"imageSpec"`
	Layers []struct {
		ChainID string `json:"chainID"`
		Path    string `json:"path"`
	} `json:"layers"`
}

func imageInfo(t *testing.T, h *huskdtest.Huskd, ref string) (*runtime.Image, verboseImage) {
	t.Helper()
	resp, err := h.Images.ImageStatus(context.Background(), spec(ref), true)
	if err != nil {
		t.Fatal(err)
	}
	var info verboseImage
	if resp.GetImage() != nil {
		if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
			t.Fatalf("verbose info: %v", err)
		}
	}
	return resp.GetImage(), info
}

func TestPullByTagDigestAndID(t *testing.T) {
	h, reg := imageHuskd(t, "")
	ctx := context.Background()
	img := busyboxImage(t)
	reg.Push(t, "e2e-test-images/busybox:1.29-2", img)
	reg.Push(t, "library/busybox:latest", img)
	manifest, config := digestOf(t, img)

	// By tag, through the mirror, known by its original name.
	ref, err := h.Images.PullImage(ctx, spec("registry.k8s.io/e2e-test-images/busybox:1.29-2"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ref != config {
		t.Errorf("image_ref %s, want the image ID (config digest) %s", ref, config)
	}
	got, info := imageInfo(t, h, "registry.k8s.io/e2e-test-images/busybox:1.29-2")
	if got == nil {
		t.Fatal("ImageStatus by tag: no image")
	}
	if got.Id != ref || got.Spec.GetImage() != ref {
		t.Errorf("Image.id %s spec %v, want %s (CRI image ID consistency)", got.Id, got.Spec, ref)
	}
	if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/e2e-test-images/busybox:1.29-2"}) {
		t.Errorf("repo tags %v", got.RepoTags)
	}
	if !slices.Equal(got.RepoDigests, []string{"registry.k8s.io/e2e-test-images/busybox@" + manifest}) {
		t.Errorf("repo digests %v, want the manifest digest under the original name", got.RepoDigests)
	}
	if got.Size == 0 || len(info.Layers) != 1 || len(info.Manifest) == 0 || len(info.ImageSpec.Config.Cmd) == 0 {
		t.Errorf("size %d, verbose info %+v", got.Size, info)
	}
	if fi, err := os.Stat(filepath.Join(info.Layers[0].Path, "bin", "busybox")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("unpacked layer: %v %v", fi, err)
	}

	// By digest, and by ID: the same image.
	for _, s := range []string{"registry.k8s.io/e2e-test-images/busybox@" + manifest, ref, strings.TrimPrefix(ref, "sha256:")} {
		r, err := h.Images.PullImage(ctx, spec(s), nil, nil)
		if err != nil || r != ref {
			t.Errorf("PullImage(%s) = %s, %v; want %s", s, r, err, ref)
		}
	}
	// A short name is docker.io/library/NAME:latest.
	if r, err := h.Images.PullImage(ctx, spec("busybox"), nil, nil); err != nil || r != ref {
		t.Fatalf("PullImage(busybox) = %s, %v", r, err)
	}
	got, _ = imageInfo(t, h, "docker.io/library/busybox:latest")
	if got == nil || !slices.Contains(got.RepoTags, "docker.io/library/busybox:latest") {
		t.Errorf("after pulling busybox: %v", got)
	}
	// One image, now with two names; every lookup form finds it.
	list, err := h.Images.ListImages(ctx, nil)
	if err != nil || len(list) != 1 || len(list[0].RepoTags) != 2 {
		t.Fatalf("ListImages: %v, %v", list, err)
	}
	for _, s := range []string{ref, ref[7:19], "busybox", "busybox:latest", "registry.k8s.io/e2e-test-images/busybox@" + manifest} {
		if got, _ := imageInfo(t, h, s); got == nil || got.Id != ref {
			t.Errorf("ImageStatus(%s) = %v", s, got)
		}
		if l, _ := h.Images.ListImages(ctx, &runtime.ImageFilter{Image: spec(s)}); len(l) != 1 {
			t.Errorf("ListImages filtered by %s: %v", s, l)
		}
	}
	if got, _ := imageInfo(t, h, "registry.k8s.io/pause:3.9"); got != nil {
		t.Errorf("ImageStatus of an image not here: %v, want none (and no error)", got)
	}
}

func TestPullPicksThePlatformFromAnIndex(t *testing.T) {
	h, reg := imageHuskd(t, "")
	amd := images.Image(images.Config{Cmd: []string{"amd64"}}, images.Layer(images.File{Name: "arch", Body: []byte("amd64")}))
	arm := images.Image(images.Config{Cmd: []string{"arm64"}, Arch: "arm64"}, images.Layer(images.File{Name: "arch", Body: []byte("arm64")}))
	idx := images.Index(
		images.PlatformImage{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Image: arm},
		images.PlatformImage{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: amd},
	)
	reg.PushIndex(t, "multi/arch:1", idx)
	ref, err := h.Images.PullImage(context.Background(), spec("registry.k8s.io/multi/arch:1"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, amdConfig := digestOf(t, amd)
	if ref != amdConfig {
		t.Errorf("pulled %s, want the amd64 image %s", ref, amdConfig)
	}
	idxDigest, _ := idx.Digest()
	got, _ := imageInfo(t, h, ref)
	if !slices.Equal(got.RepoDigests, []string{"registry.k8s.io/multi/arch@" + idxDigest.String()}) {
		t.Errorf("repo digests %v, want the index digest", got.RepoDigests)
	}
}

// Layers with whiteouts and an opaque directory, pulled through the CRI,
// give the merged tree the image means in an overlay mount.
func TestPulledWhiteoutsMergeInOverlay(t *testing.T) {
	h, reg := imageHuskd(t, "")
	img := images.Image(images.Config{},
		images.Layer(
			images.File{Name: "etc/"}, images.File{Name: "etc/keep", Body: []byte("1")}, images.File{Name: "etc/drop", Body: []byte("1")},
			images.File{Name: "var/"}, images.File{Name: "var/cache/"}, images.File{Name: "var/cache/old", Body: []byte("1")},
			images.File{Name: "opt/app", Body: []byte("v1")}),
		images.Layer(
			images.File{Name: "etc/.wh.drop"},
			images.File{Name: "var/cache/.wh..wh..opq"}, images.File{Name: "var/cache/new", Body: []byte("2")},
			images.File{Name: "opt/app", Body: []byte("v2")}),
	)
	reg.Push(t, "test/whiteouts:1", img)
	if _, err := h.Images.PullImage(context.Background(), spec("registry.k8s.io/test/whiteouts:1"), nil, nil); err != nil {
		t.Fatal(err)
	}
	_, info := imageInfo(t, h, "registry.k8s.io/test/whiteouts:1")
	var lower []string
	for _, l := range info.Layers {
		lower = append(lower, l.Path)
	}
	d := t.TempDir()
	upper, work, target := filepath.Join(d, "upper"), filepath.Join(d, "work"), filepath.Join(d, "rootfs")
	for _, p := range []string{upper, work, target} {
		_ = os.Mkdir(p, 0o755)
	}
	if err := layer.Mount(lower, upper, work, target); err != nil {
		t.Fatal(err)
	}
	defer layer.Unmount(target)
	for p, want := range map[string]string{"etc/keep": "1", "var/cache/new": "2", "opt/app": "v2"} {
		if b, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"etc/drop", "var/cache/old"} {
		if _, err := os.Lstat(filepath.Join(target, p)); !os.IsNotExist(err) {
			t.Errorf("%s visible in the merged tree: %v", p, err)
		}
	}
}

func TestMaliciousLayersAreRefused(t *testing.T) {
	h, reg := imageHuskd(t, "")
	ctx := context.Background()
	storeDir := filepath.Join(h.Root, "images")
	cases := map[string][]images.File{
		"dotdot":           {{Name: "../../../../tmp/husk-escaped-dotdot", Body: []byte("x")}},
		"symlink":          {{Name: "evil", Link: "/tmp"}, {Name: "evil/husk-escaped-symlink", Body: []byte("x")}},
		"relative-symlink": {{Name: "a/"}, {Name: "a/up", Link: "../../../../../../../../tmp"}, {Name: "a/up/husk-escaped-relative", Body: []byte("x")}},
		"hardlink":         {{Name: "pw", HardLink: "../../../../../etc/passwd"}},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			// A clean first layer, so a refused layer comes after one that worked.
			img := images.Image(images.Config{}, images.Layer(images.File{Name: "ok", Body: []byte(name)}), images.RawLayer(images.Tar(files)))
			reg.Push(t, "test/evil:"+name, img)
			_, err := h.Images.PullImage(ctx, spec("registry.k8s.io/test/evil:"+name), nil, nil)
			if err == nil || !strings.Contains(err.Error(), "unsafe layer entry") {
				t.Fatalf("PullImage: %v, want a refusal naming the unsafe entry", err)
			}
			for _, p := range []string{"/tmp/husk-escaped-dotdot", "/tmp/husk-escaped-symlink", "/tmp/husk-escaped-relative"} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was written outside the store", p)
				}
			}
			if got, _ := imageInfo(t, h, "registry.k8s.io/test/evil:"+name); got != nil {
				t.Errorf("the image was recorded: %v", got)
			}
		})
	}
	// A blob that does not hash to its digest is never unpacked.
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "real", Body: []byte("real")}))
	reg.Push(t, "test/tampered:1", img)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	reg.Tamper(d.String(), images.Tar([]images.File{{Name: "forged", Body: []byte("forged")}}))
	_, err := h.Images.PullImage(ctx, spec("registry.k8s.io/test/tampered:1"), nil, nil)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "digest") && !strings.Contains(err.Error(), "sha256") {
		t.Errorf("PullImage of a tampered blob: %v, want a digest error", err)
	}
	if layers, _ := os.ReadDir(filepath.Join(storeDir, "layers")); len(layers) != 0 {
		t.Errorf("layers left after refused pulls: %v", layers)
	}
	if tmp, _ := os.ReadDir(filepath.Join(storeDir, "tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestConcurrentPullsFetchEachBlobOnce(t *testing.T) {
	h, reg := imageHuskd(t, "")
	shared := images.Layer(images.File{Name: "shared", Body: []byte(strings.Repeat("s", 1<<20))})
	a := images.Image(images.Config{}, shared, images.Layer(images.File{Name: "a", Body: []byte("a")}))
	b := images.Image(images.Config{}, shared, images.Layer(images.File{Name: "b", Body: []byte("b")}))
	reg.Push(t, "test/a:1", a)
	reg.Push(t, "test/b:1", b)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ref := "registry.k8s.io/test/a:1"
			if i%2 == 1 {
				ref = "registry.k8s.io/test/b:1"
			}
			if _, err := h.Images.PullImage(context.Background(), spec(ref), nil, nil); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, img := range []v1.Image{a, b} {
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			if n := reg.BlobGets(d.String()); n != 1 {
				t.Errorf("blob %s fetched %d times, want once", d, n)
			}
		}
	}
}

func usage(t *testing.T, h *huskdtest.Huskd) (uint64, uint64) {
	t.Helper()
	r, err := h.Images.ImageFsInfo(context.Background())
	if err != nil || len(r.GetImageFilesystems()) != 1 {
		t.Fatalf("ImageFsInfo: %v, %v", r, err)
	}
	fs := r.GetImageFilesystems()[0]
	if fs.GetFsId().GetMountpoint() != filepath.Join(h.Root, "images") {
		t.Errorf("mountpoint %q", fs.GetFsId().GetMountpoint())
	}
	return fs.GetUsedBytes().GetValue(), fs.GetInodesUsed().GetValue()
}

// RemoveImage by one tag removes the image with every tag, across
// repositories (cri-api v0.37 api.proto, kubernetes#135710), and its
// content; it is idempotent.
func TestRemoveImage(t *testing.T) {
	h, reg := imageHuskd(t, "")
	ctx := context.Background()
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "data", Body: []byte(strings.Repeat("d", 100_000))}))
	refs := []string{"registry.k8s.io/test/rm:a", "registry.k8s.io/test/rm:b", "registry.k8s.io/other/rm:latest"}
	for _, r := range refs {
		reg.Push(t, strings.TrimPrefix(r, "registry.k8s.io/"), img)
	}
	b0, i0 := usage(t, h)
	pullAll := func() string {
		t.Helper()
		var id string
		for _, r := range refs {
			var err error
			if id, err = h.Images.PullImage(ctx, spec(r), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := imageInfo(t, h, id)
		if got == nil || len(got.RepoTags) != len(refs) {
			t.Fatalf("after pulling %v: %v", refs, got)
		}
		return id
	}
	id := pullAll()
	b1, i1 := usage(t, h)
	if b1 < b0+100_000 || i1 <= i0 {
		t.Errorf("ImageFsInfo after pull: %d bytes %d inodes, before %d %d", b1, i1, b0, i0)
	}
	gone := func(by string) {
		t.Helper()
		if l, err := h.Images.ListImages(ctx, nil); err != nil || len(l) != 0 {
			t.Errorf("ListImages after removing by %s: %v, %v", by, l, err)
		}
		for _, r := range append([]string{id}, refs...) {
			if got, _ := imageInfo(t, h, r); got != nil {
				t.Errorf("ImageStatus(%s) after removing by %s: %v", r, by, got)
			}
		}
		if b2, i2 := usage(t, h); b2 != b0 || i2 != i0 {
			t.Errorf("ImageFsInfo after removing by %s: %d bytes %d inodes, want %d %d", by, b2, i2, b0, i0)
		}
		for _, d := range []string{"layers", "blobs/sha256"} {
			if left, _ := os.ReadDir(filepath.Join(h.Root, "images", d)); len(left) != 0 {
				t.Errorf("%s left after removing by %s: %v", d, by, left)
			}
		}
	}
	// By one tag of several: the image with all its tags.
	if err := h.Images.RemoveImage(ctx, spec(refs[0])); err != nil {
		t.Fatal(err)
	}
	gone("one tag")
	// Idempotent, by the tag and by the ID.
	for _, r := range []string{refs[0], id} {
		if err := h.Images.RemoveImage(ctx, spec(r)); err != nil {
			t.Errorf("second remove by %s: %v", r, err)
		}
	}
	// By ID: the same.
	if id2 := pullAll(); id2 != id {
		t.Fatalf("pulled again: %s, first %s", id2, id)
	}
	if err := h.Images.RemoveImage(ctx, spec(id)); err != nil {
		t.Fatal(err)
	}
	gone("ID")
}

func TestImagesSurviveRestart(t *testing.T) {
	h, reg := imageHuskd(t, "")
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte("f")}))
	reg.Push(t, "test/keep:1", img)
	id, err := h.Images.PullImage(context.Background(), spec("registry.k8s.io/test/keep:1"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Kill()
	h.Launch()
	got, info := imageInfo(t, h, "registry.k8s.io/test/keep:1")
	if got == nil || got.Id != id || len(info.Layers) != 1 {
		t.Fatalf("after restart: %v", got)
	}
	if _, err := os.Stat(filepath.Join(info.Layers[0].Path, "f")); err != nil {
		t.Errorf("unpacked layer gone: %v", err)
	}
}

func TestPullFaults(t *testing.T) {
	h, reg := imageHuskd(t, "[image]\nprogress_timeout = \"2s\"\n")
	ctx := context.Background()
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte(strings.Repeat("x", 1<<20))}))
	reg.Push(t, "test/faults:1", img)

	pull := func(ref string, auth *runtime.AuthConfig) error {
		_, err := h.RawImages.PullImage(ctx, &runtime.PullImageRequest{Image: spec(ref), Auth: auth})
		return err
	}
	for _, c := range []struct {
		ref  string
		code codes.Code
		says string
	}{
		{"registry.k8s.io/UPPER:case", codes.InvalidArgument, "not a valid image reference"},
		{"", codes.InvalidArgument, "image"},
		{"registry.k8s.io/test/faults:nope", codes.NotFound, "manifest"},
		{"registry.k8s.io/test/nothing:1", codes.NotFound, "unknown"},
		{"127.0.0.1:1/test/faults:1", codes.Unavailable, "unreachable"},
	} {
		err := pull(c.ref, nil)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("PullImage(%q): %v; want %v saying %q", c.ref, err, c.code, c.says)
		}
	}

	// Credentials: refused without, used with.
	reg.RequireBasicAuth("kube", "s3cret")
	reg.Push(t, "test/private:1", img)
	if err := pull("registry.k8s.io/test/private:1", nil); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "401") {
		t.Errorf("without credentials: %v, want Unauthenticated (401)", err)
	}
	if err := pull("registry.k8s.io/test/private:1", &runtime.AuthConfig{Username: "kube", Password: "s3cret"}); err != nil {
		t.Errorf("with username/password: %v", err)
	}
	if err := pull("registry.k8s.io/test/private:1", &runtime.AuthConfig{Auth: "a3ViZTpzM2NyZXQ="}); err != nil {
		t.Errorf("with auth (base64 user:pass): %v", err)
	}
	if strings.Contains(h.Log(), "s3cret") || strings.Contains(h.Log(), "a3ViZTpzM2NyZXQ=") {
		t.Error("a credential was logged")
	}
	reg.RequireBasicAuth("", "")

	// A registry that stops sending fails the pull after the progress timeout.
	reg.Stall(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/blobs/") })
	start := time.Now()
	err := pull("registry.k8s.io/test/faults:1", nil)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no progress for 2s") {
		t.Errorf("stalled pull: %v, want DeadlineExceeded saying no progress for 2s", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("stalled pull took %s", d)
	}
	if tmp, _ := os.ReadDir(filepath.Join(h.Root, "images", "tmp")); len(tmp) != 0 {
		t.Errorf("a failed pull left temporary files: %v", tmp)
	}
}

// huskd killed in the middle of a pull: no half image, and the next start
// removes the temporary files.
func TestCrashDuringPullLeavesNoHalfImage(t *testing.T) {
	h, reg := imageHuskd(t, "")
	img := images.Image(images.Config{},
		images.Layer(images.File{Name: "small", Body: []byte("s")}),
		images.Layer(images.File{Name: "big", Body: []byte(strings.Repeat("b", 1<<20))}))
	reg.Push(t, "test/crash:1", img)
	ls, _ := img.Layers()
	big, _ := ls[1].Digest()
	reg.Stall(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, big.String()) })
	go func() {
		_, _ = h.Images.PullImage(context.Background(), spec("registry.k8s.io/test/crash:1"), nil, nil)
	}()
	tmp := filepath.Join(h.Root, "images", "tmp")
	huskdtest.Eventually(t, 10*time.Second, "the pull is half way", func() bool {
		entries, _ := os.ReadDir(tmp)
		return len(entries) > 0
	})
	h.Kill()
	reg.Stall(nil)
	h.Launch()
	if l, _ := h.Images.ListImages(context.Background(), nil); len(l) != 0 {
		t.Errorf("images after a crash mid-pull: %v", l)
	}
	for _, d := range []string{"tmp", "layers", "blobs/sha256"} {
		if left, _ := os.ReadDir(filepath.Join(h.Root, "images", d)); len(left) != 0 {
			t.Errorf("%s after restart: %v", d, left)
		}
	}
	if _, err := h.Images.PullImage(context.Background(), spec("registry.k8s.io/test/crash:1"), nil, nil); err != nil {
		t.Errorf("pull after restart: %v", err)
	}
}

func TestStreamImages(t *testing.T) {
	h, reg := imageHuskd(t, "")
	for i := 0; i < 3; i++ {
		img := images.Image(images.Config{}, images.Layer(images.File{Name: "n", Body: []byte(fmt.Sprint(i))}))
		reg.Push(t, fmt.Sprintf("test/stream:%d", i), img)
		if _, err := h.Images.PullImage(context.Background(), spec(fmt.Sprintf("registry.k8s.io/test/stream:%d", i)), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := h.RawImages.StreamImages(context.Background(), &runtime.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		for _, img := range resp.Images {
			if seen[img.Id] {
				t.Errorf("%s streamed twice", img.Id)
			}
			seen[img.Id] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("streamed %d images, want 3", len(seen))
	}
}
