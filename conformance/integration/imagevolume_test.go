package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/images"
)

// An image whose links point out of it (to "/", to "/etc", climbing
// "../../..", through a linked directory, to a directory of the host)
// never gives a container a file of the host's through image_sub_path:
// each such sub path resolves inside the image, to the image's own
// directory of that name, as it would for a container whose root the
// image is. What the image cannot give (missing, a fifo, a device, a link
// to a file only the host has) is InvalidArgument naming the field, and
// leaves nothing behind. Every image volume is read-only, nosuid and
// nodev: a device node in it cannot be opened.
func TestImageVolumeSubPaths(t *testing.T) {
	h, reg := ctrHuskd(t, "")
	ctx := context.Background()

	// What the host has and the image has not: a marker of the test's
	// own, and /etc/os-release.
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "marker"), []byte("HOST-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/etc/os-release"); err != nil || !strings.Contains(string(b), "PRETTY_NAME") {
		t.Fatalf("the host's /etc/os-release, the test's second marker: %q, %v", b, err)
	}
	mirror := strings.TrimPrefix(hostDir, "/")
	vol := images.Image(images.Config{},
		images.Layer(
			images.File{Name: "ID", Body: []byte("image-root")},
			images.File{Name: "etc/"}, images.File{Name: "etc/ID", Body: []byte("image-etc")},
			images.File{Name: "data/"}, images.File{Name: "data/ID", Body: []byte("image-data")},
			images.File{Name: "data/file", Body: []byte("from image")},
			images.File{Name: mirror + "/ID", Body: []byte("image-mirror")},
			images.File{Name: "toroot", Link: "/"},
			images.File{Name: "toetc", Link: "/etc"},
			images.File{Name: "climb", Link: "../../.."},
			images.File{Name: "deepclimb", Link: strings.Repeat("../", 30)},
			images.File{Name: "nest/"}, images.File{Name: "nest/out", Link: "../../../.."},
			images.File{Name: "hop", Link: "nest"},
			images.File{Name: "host", Link: hostDir},
			images.File{Name: "hostonly", Link: "/etc/os-release"},
			images.File{Name: "dangling", Link: "/no/such/dir"},
			images.File{Name: "loop", Link: "loop"},
			images.File{Name: "fifo", Type: tar.TypeFifo},
		),
		images.RawLayer(nullDeviceTar(t)))
	reg.Push(t, "test/subpaths:1", vol)
	ref := "registry.k8s.io/test/subpaths:1"
	if _, err := h.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
		t.Fatal(err)
	}
	imageMount := func(dst, sub string) *runtime.Mount {
		return &runtime.Mount{ContainerPath: dst, Image: &runtime.ImageSpec{Image: ref}, ImageSubPath: sub, Readonly: true}
	}
	pod, podCfg := podWithLogs(t, h, "subpaths", nil)

	contained := []struct{ sub, id string }{
		{"", "image-root"},
		{"toroot", "image-root"},
		{"toetc", "image-etc"},
		{"climb", "image-root"},
		{"deepclimb", "image-root"},
		{"hop/out", "image-root"},
		{"hop/out/etc", "image-etc"},
		{"host", "image-mirror"},
		{"data", "image-data"},
	}
	cfg := ctrConfig("contained")
	var script strings.Builder
	for i, c := range contained {
		cfg.Mounts = append(cfg.Mounts, imageMount(fmt.Sprintf("/v%d", i), c.sub))
		// The ID says whose directory it is; the rest are the host's
		// files, which must not be there.
		fmt.Fprintf(&script, "echo \"v%d id=$(cat /v%d/ID)\"; cat /v%d/marker /v%d%s/marker /v%d/os-release /v%d/etc/os-release 2>/dev/null; ",
			i, i, i, i, hostDir, i, i)
	}
	cfg.Mounts = append(cfg.Mounts, imageMount("/vfile", "data/file"))
	script.WriteString(`echo "file=$(cat /vfile)"; `)
	// The whole image's device node: nodev refuses to open it.
	script.WriteString(`cat /v0/null && echo null-opened || echo null-refused; `)
	script.WriteString(`awk '$5 ~ /^\/v/ { print "mount", $5, $6 }' /proc/self/mountinfo`)
	cfg.Command = []string{"sh", "-c", script.String()}
	st, out := runToExit(t, h, pod, podCfg, cfg)
	for i, c := range contained {
		if want := fmt.Sprintf("stdout v%d id=%s\n", i, c.id); !strings.Contains(out, want) {
			t.Errorf("image_sub_path %q: want %q in the output", c.sub, want)
		}
	}
	for _, host := range []string{"HOST-SECRET", "PRETTY_NAME"} {
		if strings.Contains(out, host) {
			t.Errorf("a container read the host's %s through an image volume", host)
		}
	}
	if !strings.Contains(out, "stdout file=from image\n") {
		t.Errorf("a single file's sub path: want its content")
	}
	if !strings.Contains(out, "stdout null-refused\n") {
		t.Errorf("a device node of an image volume could be opened (no nodev)")
	}
	mounts := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[1] != "mount" {
			continue
		}
		mounts++
		opts := strings.Split(f[3], ",")
		for _, want := range []string{"ro", "nosuid", "nodev"} {
			if !slices.Contains(opts, want) {
				t.Errorf("image volume %s is mounted %s, without %s", f[2], f[3], want)
			}
		}
	}
	if mounts != len(contained)+1 {
		t.Errorf("%d image volume mounts in the container's mountinfo, want %d", mounts, len(contained)+1)
	}
	if t.Failed() {
		t.Logf("exit %d, output:\n%s", st.ExitCode, out)
	}

	// Refused: mounts[0] is an honest volume, which must not stay mounted
	// when mounts[1] fails.
	for _, c := range []struct{ sub, says string }{
		{"missing", `"missing" does not exist (image`},
		{"hostonly", `"hostonly" does not exist (image`},
		{"dangling", `"dangling" does not exist (image`},
		{"hop/missing", `"hop/missing" does not exist (image`},
		{"loop", `"loop" has too many levels of symbolic links`},
		{"fifo", `"fifo" is a fifo, not a directory or a regular file`},
		{"null", `"null" is a character device, not a directory or a regular file`},
		{"../etc", `"../etc" must be a relative path inside the image`},
		{"/etc", `"/etc" must be a relative path inside the image`},
	} {
		// A name of its own: a creation that is not refused must not make
		// the next case fail for its name.
		cfg := ctrConfig("refused-"+strings.NewReplacer("/", "-", ".", "-").Replace(c.sub), "true")
		cfg.Mounts = []*runtime.Mount{imageMount("/ok", "data"), imageMount("/bad", c.sub)}
		_, err := h.Runtime.CreateContainer(ctx, pod, cfg, podCfg)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.mounts[1].image_sub_path: "+c.says) {
			t.Errorf("image_sub_path %q: %v; want InvalidArgument saying %q", c.sub, err, c.says)
		}
	}
	if l, _ := h.Runtime.ListContainers(ctx, nil); len(l) != 1 {
		t.Errorf("refused creations left %d containers", len(l)-1)
	}
	if !strings.Contains(h.Log(), `"CRI call failed" err="config.mounts[1].image_sub_path: \"hostonly\" does not exist (image`) {
		t.Errorf("huskd's log does not say why the sub path was refused:\n%s", h.Log())
	}
	if err := h.Runtime.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if leaks := h.Leaks(); len(leaks) != 0 {
		t.Errorf("left: %v", leaks)
	}
}

// nullDeviceTar is a layer holding "null", a character device 1:3 like
// the host's /dev/null, which a container's device rules allow: only
// nodev keeps it from being opened.
func nullDeviceTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
