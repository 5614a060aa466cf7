package nodee2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/huskrt/husk/conformance/images"
)

// Inputs are what the images are built from, all found on this machine or
// built from the kubernetes module.
type Inputs struct {
	// Programs is scripts/node-e2e-build.sh's programs/ directory: the Go
	// programs of the test images, busybox 1.37.0 and agnhost's (porter's)
	// TLS certificate and key.
	Programs string
	Imagebin []byte // critest's imagebin, the nginx stand-in
	Pause    []byte // a static pause program
	// Kitten is scripts/node-e2e-build.sh's kitten/ directory: the
	// kitten image's data.json and kitten.jpg, from the kubernetes module.
	Kitten string
}

// Build builds the images of Images (all but the one that must not
// resolve), by name.
func Build(in Inputs) (map[string]v1.Image, error) {
	program := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(in.Programs, name)) }
	bb, err := images.BusyboxBinFiles(filepath.Join(in.Programs, "busybox"))
	if err != nil {
		return nil, err
	}
	agnhost, err := program("agnhost")
	if err != nil {
		return nil, err
	}
	nnp, err := program("nonewprivs")
	if err != nil {
		return nil, err
	}
	sdp, err := program("sample-device-plugin")
	if err != nil {
		return nil, err
	}
	crt, err := program("localhost.crt")
	if err != nil {
		return nil, err
	}
	key, err := program("localhost.key")
	if err != nil {
		return nil, err
	}
	// with adds, to busybox, the files of the host programs given (with
	// their libraries) and then files.
	with := func(hostPrograms []string, files ...images.File) ([]images.File, error) {
		out := append([]images.File{}, bb...)
		seen := map[string]bool{}
		for _, f := range out {
			seen[f.Name] = true
		}
		for _, p := range hostPrograms {
			pf, err := images.ProgramFiles(p)
			if err != nil {
				return nil, err
			}
			for _, f := range pf {
				if !seen[f.Name] {
					seen[f.Name] = true
					out = append(out, f)
				}
			}
		}
		// A file given replaces busybox's of the same name (/etc/passwd).
		for _, f := range files {
			if seen[f.Name] {
				for i := range out {
					if out[i].Name == f.Name {
						out[i] = f
					}
				}
				continue
			}
			seen[f.Name] = true
			out = append(out, f)
		}
		return out, nil
	}
	image := func(cfg images.Config, files []images.File) v1.Image {
		if cfg.Cmd == nil && cfg.Entrypoint == nil {
			cfg.Cmd = []string{"sh"}
		}
		return images.Image(cfg, images.Layer(files...))
	}

	pause := images.Image(images.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		images.Layer(images.File{Name: "pause", Body: in.Pause, Mode: 0o755}))
	registry, err := fakeRegistry("pause", "testing", pause)
	if err != nil {
		return nil, err
	}
	agnhostFiles := func(tag string) ([]images.File, error) {
		files := []images.File{
			{Name: "agnhost", Body: agnhost, Mode: 0o755},
			{Name: "agnhost-2", Link: "agnhost"},
			{Name: "uploads/"},
			// The https servers of the probe and lifecycle hook specs.
			{Name: "localhost.crt", Body: crt},
			{Name: "localhost.key", Body: key},
			{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n")},
			{Name: "etc/group", Body: []byte("root:x:0:\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")},
			// Upstream's base, alpine 3.21, names itself here; the image
			// volume specs read it back through a volume of kitten, which
			// is agnhost's image with two files more.
			{Name: "etc/os-release", Body: []byte(alpineOSRelease)},
			{Name: "home/user-defined-in-image/", UID: 1000, GID: 1000},
			// Which agnhost this is: 2.55's stand-in differs in this
			// file, so its ID differs.
			{Name: "etc/agnhost-tag", Body: []byte(tag + "\n")},
		}
		// curl and bash, alpine's in upstream's image: the suite execs
		// curl in agnhost pods (node-to-pod checks), and the probe specs
		// run their container's script with /bin/bash.
		return with([]string{"/usr/bin/curl", "/bin/bash"}, append(files, registry...)...)
	}
	agnhostConfig := images.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"},
		ExposedPorts: []string{"80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"}}

	out := map[string]v1.Image{"registry.k8s.io/pause:3.10.2": pause}
	for _, tag := range []string{"2.66.1", "2.55"} {
		files, err := agnhostFiles(tag)
		if err != nil {
			return nil, err
		}
		out["registry.k8s.io/e2e-test-images/agnhost:"+tag] = image(agnhostConfig, files)
	}
	// kitten: agnhost 2.66.1 with the two files of test/images/kitten
	// at /, serving them (CMD test-webserver), as upstream's Dockerfile.
	kittenFiles, err := agnhostFiles("2.66.1")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kitten.jpg", "data.json"} {
		b, err := os.ReadFile(filepath.Join(in.Kitten, name))
		if err != nil {
			return nil, err
		}
		kittenFiles = append(kittenFiles, images.File{Name: name, Body: b})
	}
	out["registry.k8s.io/e2e-test-images/kitten:1.8"] = image(images.Config{Entrypoint: agnhostConfig.Entrypoint,
		Cmd: []string{"test-webserver"}, ExposedPorts: agnhostConfig.ExposedPorts}, kittenFiles)
	out["registry.k8s.io/e2e-test-images/busybox:1.37.0-2"] = image(images.Config{}, bb)
	nginx, err := with(nil, images.File{Name: "usr/local/"}, images.File{Name: "usr/local/sbin/"},
		images.File{Name: "usr/local/sbin/nginx", Body: in.Imagebin, Mode: 0o755})
	if err != nil {
		return nil, err
	}
	out["registry.k8s.io/e2e-test-images/nginx:1.27.0-2"] = image(images.Config{
		Entrypoint: []string{"nginx", "-g", "daemon off;"}, ExposedPorts: []string{"80/tcp"}}, nginx)
	// Set-user-ID root, as upstream's `chmod +s`.
	nnpFiles, err := with(nil, images.File{Name: "usr/local/"}, images.File{Name: "usr/local/bin/"},
		images.File{Name: "usr/local/bin/nnp", Body: nnp, Mode: 0o6755})
	if err != nil {
		return nil, err
	}
	out["registry.k8s.io/e2e-test-images/nonewprivs:1.4"] = image(images.Config{Cmd: []string{"nnp"}}, nnpFiles)
	out["registry.k8s.io/e2e-test-images/nonroot:1.5"] = image(images.Config{User: "1234"}, bb)
	ipc, err := with([]string{"/usr/bin/ipcs", "/usr/bin/ipcmk", "/usr/bin/ipcrm"})
	if err != nil {
		return nil, err
	}
	out["registry.k8s.io/e2e-test-images/ipc-utils:1.4"] = image(images.Config{}, ipc)
	dns, err := with([]string{"/usr/bin/hostname"}, images.File{Name: "etc/nsswitch.conf", Body: []byte("hosts: files dns\n")})
	if err != nil {
		return nil, err
	}
	out["registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"] = image(images.Config{}, dns)
	sdpFiles, err := with(nil, images.File{Name: "sampledeviceplugin", Body: sdp, Mode: 0o755})
	if err != nil {
		return nil, err
	}
	out["registry.k8s.io/e2e-test-images/sample-device-plugin:1.8.0"] = image(images.Config{
		Entrypoint: []string{"/sampledeviceplugin", "-alsologtostderr"}}, sdpFiles)
	return out, nil
}

// fakeRegistry lays img out as agnhost's fake-registry-server reads it
// under /var/registry (upstream's prepare_registry.sh writes the same):
// NAME/manifests/TAG holds the digest of an image index, and every
// manifest and blob is at NAME/{manifests,blobs}/sha256/<2>/<hash>/data.
func fakeRegistry(name, tag string, img v1.Image) ([]images.File, error) {
	idx := images.Index(images.PlatformImage{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: img})
	root := "var/registry/" + name + "/"
	files := []images.File{{Name: "var/registry/"}, {Name: root}, {Name: root + "manifests/"}, {Name: root + "blobs/"}}
	dirs := map[string]bool{}
	add := func(kind string, body []byte) string {
		h := fmt.Sprintf("%x", sha256.Sum256(body))
		for _, d := range []string{kind + "sha256/", kind + "sha256/" + h[:2] + "/", kind + "sha256/" + h[:2] + "/" + h + "/"} {
			if !dirs[d] {
				dirs[d] = true
				files = append(files, images.File{Name: root + d})
			}
		}
		files = append(files, images.File{Name: root + kind + "sha256/" + h[:2] + "/" + h + "/data", Body: body})
		return "sha256:" + h
	}
	idxManifest, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	digest := add("manifests/", idxManifest)
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	add("manifests/", manifest)
	config, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	add("blobs/", config)
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		add("blobs/", b)
	}
	files = append(files, images.File{Name: root + "manifests/" + tag, Body: []byte(digest + "\n")})
	return files, nil
}

// alpineOSRelease is alpine 3.21's /etc/os-release.
const alpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.21.3
PRETTY_NAME="Alpine Linux v3.21"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`
