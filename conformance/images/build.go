// Package images builds husk's test images offline and serves them from a
// registry on 127.0.0.1. Images are built from files (Debian's busybox with
// the glibc it needs, small static programs) with fixed times, so the same
// inputs give the same digests on every run.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the time of every file and image: digests do not change between
// builds.
var epoch = time.Unix(1_700_000_000, 0).UTC()

// File is one entry of a layer.
type File struct {
	Name     string // relative, no leading slash; a trailing "/" makes a directory
	Body     []byte
	Mode     int64 // default 0644 (0755 for directories)
	UID, GID int
	Link     string // symlink target
	HardLink string // hard link target (a name in the layer)
	Type     byte   // tar type when not implied (e.g. tar.TypeChar)
	Xattrs   map[string]string
	PAX      map[string]string // more PAX records, as a tar writer may add
}

// Tar writes files as one tar stream, in the order given.
func Tar(files []File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Type != 0:
			h.Typeflag = f.Type
		case strings.HasSuffix(f.Name, "/"):
			h.Typeflag = tar.TypeDir
		case f.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		case f.HardLink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.HardLink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		for k, v := range f.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		for k, v := range f.PAX {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				panic(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Layer makes a gzip-compressed layer of files.
func Layer(files ...File) v1.Layer {
	return RawLayer(Tar(files))
}

// RawLayer makes a gzip-compressed layer of a tar stream taken as it is,
// however malformed.
func RawLayer(tarStream []byte) v1.Layer {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarStream)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		panic(err)
	}
	return l
}

// Config is what an image runs by default.
type Config struct {
	Entrypoint, Cmd []string
	Env             []string
	WorkingDir      string
	User            string
	StopSignal      string
	ExposedPorts    []string
	Labels          map[string]string
	Volumes         []string
	Arch            string // default amd64
}

// Image stacks layers (bottom first) under an OCI config for linux/amd64.
func Image(cfg Config, layers ...v1.Layer) v1.Image {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		panic(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		panic(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if cfg.Arch != "" {
		cf.Architecture = cfg.Arch
	}
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: cfg.Env, WorkingDir: cfg.WorkingDir,
		User: cfg.User, StopSignal: cfg.StopSignal, Labels: cfg.Labels,
	}
	if len(cfg.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	for _, p := range cfg.ExposedPorts {
		if cf.Config.ExposedPorts == nil {
			cf.Config.ExposedPorts = map[string]struct{}{}
		}
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	for _, v := range cfg.Volumes {
		if cf.Config.Volumes == nil {
			cf.Config.Volumes = map[string]struct{}{}
		}
		cf.Config.Volumes[v] = struct{}{}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		panic(err)
	}
	return img
}

// PlatformImage is one entry of a multi-platform index.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// Index is a multi-platform index of images, each with its platform.
func Index(entries ...PlatformImage) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, e := range entries {
		pl := e.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: e.Image, Descriptor: v1.Descriptor{Platform: &pl}})
	}
	return idx
}

// BusyboxPath is Debian's (dynamically linked) busybox, unpacked from its
// package by scripts/deps.sh; $HUSK_BUSYBOX overrides it.
func BusyboxPath() (string, error) {
	p := os.Getenv("HUSK_BUSYBOX")
	if p == "" {
		return "", fmt.Errorf("HUSK_BUSYBOX is not set: run through `make test`, which unpacks Debian's busybox")
	}
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// BusyboxFiles is a small root filesystem: Debian's busybox with its
// applets as hard links, the glibc it links against, /etc/passwd and
// /etc/group (root, nobody, www-data) and the usual directories. Debian's
// regular busybox is used rather than busybox-static because the static
// one runs applets in-process, which defeats tests that mask a binary.
func BusyboxFiles(busybox string) ([]File, error) { return busyboxFiles(busybox, false) }

// BusyboxBinFiles is BusyboxFiles with every applet in /bin, as Docker
// Hub's busybox images lay them out (specs exec /bin/top).
func BusyboxBinFiles(busybox string) ([]File, error) { return busyboxFiles(busybox, true) }

func busyboxFiles(busybox string, allInBin bool) ([]File, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: "bin/"}, {Name: "sbin/"}, {Name: "usr/"}, {Name: "usr/bin/"}, {Name: "usr/sbin/"},
		{Name: "etc/"}, {Name: "root/", Mode: 0o700}, {Name: "home/"}, {Name: "tmp/", Mode: 0o1777},
		{Name: "var/"}, {Name: "var/run/"}, {Name: "var/log/"}, {Name: "proc/"}, {Name: "sys/"}, {Name: "dev/"},
		{Name: "bin/busybox", Body: bin, Mode: 0o755},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")},
		{Name: "etc/hostname", Body: []byte("busybox\n")},
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	seen := map[string]bool{"bin/busybox": true}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if allInBin {
			a = "bin/" + path.Base(a)
		}
		if !seen[a] {
			seen[a] = true
			applets = append(applets, a)
		}
	}
	sort.Strings(applets)
	for _, a := range applets {
		// Same mode as the target: unpackers (containerd's among them) apply a
		// hard link's header to the shared inode.
		files = append(files, File{Name: a, HardLink: "bin/busybox", Mode: 0o755})
	}
	libs, err := sharedLibs(busybox)
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	for _, lib := range libs {
		for d := path.Dir(strings.TrimPrefix(lib.name, "/")); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		files = append(files, File{Name: d + "/"})
	}
	return appendLibs(files, libs)
}

// appendLibs appends the libraries' files, each at the name it is loaded by.
func appendLibs(files []File, libs []sharedLib) ([]File, error) {
	for _, lib := range libs {
		body, err := os.ReadFile(lib.real)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: strings.TrimPrefix(lib.name, "/"), Body: body, Mode: 0o755})
	}
	return files, nil
}

// ProgramFiles is a dynamically linked host program at its own path, with
// the libraries it loads, for an image that needs a tool Debian's busybox
// lacks. Directories are not included: the busybox files make them.
func ProgramFiles(bin string) ([]File, error) {
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	files := []File{{Name: strings.TrimPrefix(bin, "/"), Body: body, Mode: 0o755}}
	libs, err := sharedLibs(bin)
	if err != nil {
		return nil, err
	}
	return appendLibs(files, libs)
}

type sharedLib struct{ name, real string }

// sharedLibs lists what ldd says bin loads, with the files behind symlinks.
func sharedLibs(bin string) ([]sharedLib, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []sharedLib
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var p string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			p = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			p = f[0]
		default:
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, err
		}
		libs = append(libs, sharedLib{name: p, real: real})
	}
	return libs, nil
}

// Busybox is the busybox image: one layer, "sh" by default.
func Busybox(busybox string, cfg Config) (v1.Image, error) {
	files, err := BusyboxFiles(busybox)
	if err != nil {
		return nil, err
	}
	if cfg.Cmd == nil && cfg.Entrypoint == nil {
		cfg.Cmd = []string{"sh"}
	}
	return Image(cfg, Layer(files...)), nil
}
