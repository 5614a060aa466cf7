// Package critest runs cri-tools' conformance suite (critest) against
// huskd: it builds the images critest pulls, serves them from a registry
// on 127.0.0.1 under the names critest asks for (through hosts.toml
// mirrors, so that names compare as upstream), runs the critest binary and
// reads its ginkgo report.
package critest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/huskrt/husk/conformance/ginkgoreport"
	"github.com/huskrt/husk/conformance/images"
)

// Registries are the registries critest's images come from; the local
// registry stands in for each, keeping the repository path.
var Registries = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "public.ecr.aws"}

const staging = "k8s-staging-cri-tools/"

// Images are the images critest pulls, by repository path and tag (the
// reference without its registry). They are busybox images, as upstream's
// are, with imagebin standing in for nginx, httpd and nonewprivs.
func Images(busybox string, imagebin []byte) (map[string]v1.Image, error) {
	bb, err := images.BusyboxFiles(busybox)
	if err != nil {
		return nil, err
	}
	// Upstream's busybox has pgrep and ipcs, which critest runs; Debian's
	// lacks them, so the host's procps and util-linux programs stand in.
	seen := map[string]bool{}
	for _, f := range bb {
		seen[f.Name] = true
	}
	for _, prog := range []string{"/usr/bin/pgrep", "/usr/bin/ipcs"} {
		files, err := images.ProgramFiles(prog)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !seen[f.Name] {
				seen[f.Name] = true
				bb = append(bb, f)
			}
		}
	}
	base := images.Layer(bb...)
	withFiles := func(cfg images.Config, files ...images.File) v1.Image {
		if cfg.Cmd == nil && cfg.Entrypoint == nil {
			cfg.Cmd = []string{"sh"}
		}
		if len(files) == 0 {
			return images.Image(cfg, base)
		}
		return images.Image(cfg, base, images.Layer(files...))
	}
	program := func(path string, mode int64) images.File {
		return images.File{Name: path, Body: imagebin, Mode: mode}
	}
	nginx := []images.File{{Name: "usr/local/"}, {Name: "usr/local/sbin/"}, program("usr/local/sbin/nginx", 0o755)}
	imgs := map[string]v1.Image{
		"e2e-test-images/busybox:1.29-2": withFiles(images.Config{}),
		"e2e-test-images/nginx:1.14-2": withFiles(images.Config{
			Entrypoint: []string{"nginx", "-g", "daemon off;"}, ExposedPorts: []string{"80/tcp"},
		}, nginx...),
		"e2e-test-images/httpd:2.4.39-4": withFiles(images.Config{
			Cmd: []string{"/usr/local/apache2/bin/httpd"}, ExposedPorts: []string{"80/tcp"},
		}, images.File{Name: "usr/local/"}, images.File{Name: "usr/local/apache2/"}, images.File{Name: "usr/local/apache2/bin/"},
			program("usr/local/apache2/bin/httpd", 0o755)),
		// Set-user-ID root: with no_new_privs false the program runs as
		// root whatever user the container runs as.
		"e2e-test-images/nonewprivs:1.3": withFiles(images.Config{Entrypoint: []string{"/usr/local/bin/nonewprivs"}},
			images.File{Name: "usr/local/"}, images.File{Name: "usr/local/bin/"}, program("usr/local/bin/nonewprivs", 0o4755)),
		staging + "hostnet-nginx-amd64:latest": withFiles(images.Config{
			Entrypoint: []string{"nginx", "-g", "daemon off;", "-listen", ":12003"}, ExposedPorts: []string{"12003/tcp"},
		}, nginx...),
		staging + "test-image-user-uid:latest":            withFiles(images.Config{User: "1002"}),
		staging + "test-image-user-username:latest":       withFiles(images.Config{User: "www-data"}),
		staging + "test-image-user-uid-group:latest":      withFiles(images.Config{User: "1003:1004"}),
		staging + "test-image-user-username-group:latest": withFiles(images.Config{User: "www-data:1004"}),
		staging + "test-image-predefined-group:latest": withFiles(images.Config{User: "1000"},
			images.File{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\n")},
			images.File{Name: "etc/group", Body: []byte("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
			images.File{Name: "home/default-user/", UID: 1000, GID: 1000}),
		// A pause image for the specs that count tags: husk itself needs none.
		"pause:3.9": images.Image(images.Config{Entrypoint: []string{"/pause"}},
			images.Layer(images.File{Name: "pause", Body: []byte("#!/bin/sh\n# not run: a pause image for critest's tag specs\n"), Mode: 0o755})),
	}
	// Upstream's test images are busybox plus a file named for the image
	// (ADD ${TEST} ${TEST}), which gives each its own ID.
	for _, name := range []string{"test-image-latest:latest", "test-image-tag:test", "test-image-tag:all",
		"test-image-1:latest", "test-image-2:latest", "test-image-3:latest"} {
		file := strings.SplitN(name, ":", 2)[0]
		imgs[staging+name] = withFiles(images.Config{}, images.File{Name: file, Body: []byte(name + "\n")})
	}
	tags := withFiles(images.Config{}, images.File{Name: "test-image-tags", Body: []byte("test-image-tags\n")})
	for _, tag := range []string{"1", "2", "3"} {
		imgs[staging+"test-image-tags:"+tag] = tags
	}
	// critest -benchmark's images: distinct, so that listing counts them.
	for _, tag := range []string{"1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"} {
		imgs["docker/library/busybox:"+tag] = withFiles(images.Config{Labels: map[string]string{"tag": tag}})
	}
	return imgs, nil
}

// BuildImagebin builds imagebin static, or reads $HUSK_IMAGEBIN when that
// names one built beforehand (the cgroup v2 VM has no Go toolchain).
func BuildImagebin() ([]byte, error) {
	if p := os.Getenv("HUSK_IMAGEBIN"); p != "" {
		return os.ReadFile(p)
	}
	dir, err := os.MkdirTemp("", "imagebin")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "imagebin")
	cmd := exec.Command("go", "build", "-o", out, "github.com/huskrt/husk/conformance/critest/imagebin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building imagebin: %w: %s", err, b)
	}
	return os.ReadFile(out)
}

// Serve starts a registry with critest's images for the test and returns
// it and a hosts.toml directory that mirrors critest's registries to it.
func Serve(t testing.TB) (*images.Registry, string) {
	t.Helper()
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	bin, err := BuildImagebin()
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Images(bb, bin)
	if err != nil {
		t.Fatal(err)
	}
	reg := images.StartRegistry(t)
	reg.PushAll(t, imgs, "")
	return reg, reg.MirrorConfig(t, Registries...)
}

// Spec is one spec of a critest run.
type Spec = ginkgoreport.Spec
