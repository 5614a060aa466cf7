package nodee2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/huskrt/husk/conformance/critest"
)

// TestBuild builds every image and checks what the specs rely on in each.
// It needs $HUSK_BUSYBOX, $HUSK_BIN (the pause), $HUSK_E2E_NODE_PROGRAMS and
// $HUSK_E2E_NODE_KITTEN.
func TestBuild(t *testing.T) {
	programs := os.Getenv("HUSK_E2E_NODE_PROGRAMS")
	bin := os.Getenv("HUSK_BIN")
	if programs == "" || bin == "" || os.Getenv("HUSK_E2E_NODE_KITTEN") == "" {
		t.Skip("$HUSK_E2E_NODE_PROGRAMS, $HUSK_E2E_NODE_KITTEN or $HUSK_BIN is not set (`make node-e2e-build` sets them)")
	}
	pause, err := os.ReadFile(filepath.Join(bin, "husk-pause"))
	if err != nil {
		t.Fatal(err)
	}
	imagebin, err := critest.BuildImagebin()
	if err != nil {
		t.Fatal(err)
	}
	built, err := Build(Inputs{Programs: programs, Imagebin: imagebin, Pause: pause, Kitten: os.Getenv("HUSK_E2E_NODE_KITTEN")})
	if err != nil {
		t.Fatal(err)
	}

	// Every listed image is built, but the one that must not resolve.
	var want, got []string
	for _, im := range Images {
		if !strings.HasPrefix(im.Build, "none") {
			want = append(want, im.Name)
		}
	}
	for name := range built {
		got = append(got, name)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("built %q\nwant %q", got, want)
	}

	for _, c := range []struct {
		name            string
		entrypoint, cmd string
		user            string
		files           map[string]int64 // path: mode bits that must be set
		passwdHas       string
	}{
		{name: "agnhost:2.66.1", entrypoint: "/agnhost", cmd: "pause",
			files:     map[string]int64{"agnhost": 0o755, "usr/bin/curl": 0o755, "bin/bash": 0o755, "localhost.crt": 0o644, "localhost.key": 0o644, "bin/sh": 0o755, "uploads": 0o755, "var/registry/pause/manifests/testing": 0o644},
			passwdHas: "user-defined-in-image:x:1000:"},
		{name: "agnhost:2.55", entrypoint: "/agnhost", cmd: "pause", files: map[string]int64{"agnhost": 0o755}},
		{name: "kitten:1.8", entrypoint: "/agnhost", cmd: "test-webserver", files: map[string]int64{"agnhost": 0o755, "data.json": 0o644, "kitten.jpg": 0o644, "etc/os-release": 0o644},
			passwdHas: "root:x:0:0:"},
		{name: "busybox:1.37.0-2", cmd: "sh", files: map[string]int64{"bin/sh": 0o755, "bin/sleep": 0o755, "bin/nmeter": 0o755, "bin/top": 0o755}},
		{name: "nginx:1.27.0-2", entrypoint: "nginx -g daemon off;", files: map[string]int64{"usr/local/sbin/nginx": 0o755}},
		{name: "nonewprivs:1.4", cmd: "nnp", files: map[string]int64{"usr/local/bin/nnp": 0o4755}},
		{name: "nonroot:1.5", cmd: "sh", user: "1234", files: map[string]int64{"bin/id": 0o755}},
		{name: "ipc-utils:1.4", cmd: "sh", files: map[string]int64{"usr/bin/ipcs": 0o755, "usr/bin/ipcmk": 0o755}},
		{name: "glibc-dns-testing:2.1.1", cmd: "sh", files: map[string]int64{"usr/bin/hostname": 0o755}},
		{name: "sample-device-plugin:1.8.0", entrypoint: "/sampledeviceplugin -alsologtostderr", files: map[string]int64{"sampledeviceplugin": 0o755}},
	} {
		img := built["registry.k8s.io/e2e-test-images/"+c.name]
		if img == nil {
			t.Errorf("%s: not built", c.name)
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if e, cmd := strings.Join(cf.Config.Entrypoint, " "), strings.Join(cf.Config.Cmd, " "); e != c.entrypoint || cmd != c.cmd || cf.Config.User != c.user {
			t.Errorf("%s: entrypoint %q cmd %q user %q, want %q %q %q", c.name, e, cmd, cf.Config.User, c.entrypoint, c.cmd, c.user)
		}
		files := contents(t, img)
		for p, mode := range c.files {
			h, ok := files[p]
			if !ok {
				t.Errorf("%s: no %s", c.name, p)
			} else if h.mode&mode != mode {
				t.Errorf("%s: %s mode %o, want %o set", c.name, p, h.mode, mode)
			}
		}
		if c.passwdHas != "" && !strings.Contains(string(files["etc/passwd"].body), c.passwdHas) {
			t.Errorf("%s: /etc/passwd lacks %q", c.name, c.passwdHas)
		}
	}
	// What the image volume specs read through a volume of kitten.
	kitten := contents(t, built["registry.k8s.io/e2e-test-images/kitten:1.8"])
	for p, want := range map[string]string{"data.json": "kitten.jpg", "etc/os-release": "Alpine Linux", "etc/passwd": "root:"} {
		if !strings.Contains(string(kitten[p].body), want) {
			t.Errorf("kitten:1.8: /%s lacks %q", p, want)
		}
	}
	if a, b := digest(t, built["registry.k8s.io/e2e-test-images/agnhost:2.66.1"]), digest(t, built["registry.k8s.io/e2e-test-images/agnhost:2.55"]); a == b {
		t.Error("agnhost 2.55's stand-in has 2.66.1's digest")
	}

	// agnhost's fake-registry-server finds pause:testing as upstream lays
	// it out, every file named for its content's digest.
	files := contents(t, built["registry.k8s.io/e2e-test-images/agnhost:2.66.1"])
	read := func(kind, d string) []byte {
		h := strings.TrimPrefix(d, "sha256:")
		p := "var/registry/pause/" + kind + "/sha256/" + h[:2] + "/" + h + "/data"
		f, ok := files[p]
		if !ok {
			t.Fatalf("fake registry: no %s", p)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(f.body)); got != h {
			t.Fatalf("fake registry: %s holds %s", p, got)
		}
		return f.body
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(read("manifests", strings.TrimSpace(string(files["var/registry/pause/manifests/testing"].body))), &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("fake registry: index %+v, %v", idx, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(read("manifests", idx.Manifests[0].Digest.String()), &m); err != nil {
		t.Fatal(err)
	}
	read("blobs", m.Config.Digest.String())
	for _, l := range m.Layers {
		read("blobs", l.Digest.String())
	}
	if want := digest(t, built["registry.k8s.io/pause:3.10.2"]); idx.Manifests[0].Digest.String() != want {
		t.Errorf("fake registry's pause:testing is %s, the pause image %s", idx.Manifests[0].Digest, want)
	}
}

type entry struct {
	mode int64
	body []byte
}

// contents reads an image's flattened file system.
func contents(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		if _, err := io.Copy(&body, tr); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		out[name] = entry{mode: h.Mode, body: body.Bytes()}
	}
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
