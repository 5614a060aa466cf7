package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/huskdtest"
	"github.com/huskrt/husk/conformance/images"
)

// hostsDir writes <dir>/<registry>/hosts.toml for each registry given and
// returns dir.
func hostsDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for reg, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, reg), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, reg, "hosts.toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func huskdWithHosts(t *testing.T, dir, extraConfig string) *huskdtest.Huskd {
	t.Helper()
	return huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[registry]\nconfig_path = %q\n%s", dir, extraConfig))...)
}

func pullWith(h *huskdtest.Huskd, ref string, auth *runtime.AuthConfig) error {
	_, err := h.RawImages.PullImage(context.Background(), &runtime.PullImageRequest{Image: spec(ref), Auth: auth})
	return err
}

// newAuthorizations returns what reg received after the first n.
func newAuthorizations(reg *images.Registry, n int) []string {
	return reg.Authorizations()[n:]
}

// Credentials go to the registry they are for, nowhere else: not to a
// mirror that asks for them, not to any host when server_address names
// another registry, and not over plain HTTP unless hosts.toml allows it for
// that very host.
func TestPullCredentialsGoOnlyWhereTheyAreFor(t *testing.T) {
	reg := images.StartRegistry(t)
	reg.RequireBasicAuth("kube", "s3cret")
	reg.Push(t, "app:1", images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte("private")})))
	// A mirror that answers every request with a demand for credentials,
	// and writes down what it is sent.
	mirror := images.StartRegistry(t)
	mirror.RequireBasicAuth("mirror", "wants-yours")
	dir := hostsDir(t, map[string]string{
		"creds.test": fmt.Sprintf("server = \"http://%s\"\nallow_credentials_over_http = true\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.Host, mirror.Host),
		"plain.test": fmt.Sprintf("server = \"http://%s\"\n", reg.Host),
	})
	h := huskdWithHosts(t, dir, "")
	creds := func(server string) *runtime.AuthConfig {
		return &runtime.AuthConfig{Username: "kube", Password: "s3cret", ServerAddress: server}
	}
	const secret = "Basic a3ViZTpzM2NyZXQ=" // kube:s3cret

	t.Run("a mirror before the registry", func(t *testing.T) {
		n, m := len(reg.Authorizations()), len(mirror.Authorizations())
		if err := pullWith(h, "creds.test/app:1", creds("")); err != nil {
			t.Fatalf("pull with the registry's credentials: %v", err)
		}
		if got := newAuthorizations(mirror, m); len(got) != 0 {
			t.Errorf("the mirror received credentials meant for the registry: %q", got)
		}
		if got := newAuthorizations(reg, n); len(got) == 0 || !strings.HasSuffix(got[0], secret) {
			t.Errorf("the registry received %q, want the credentials", got)
		}
	})
	t.Run("server_address names another registry", func(t *testing.T) {
		n, m := len(reg.Authorizations()), len(mirror.Authorizations())
		err := pullWith(h, "creds.test/app:1", creds("other.example"))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "they are for other.example") {
			t.Errorf("pull: %v, want Unauthenticated saying the credentials are for other.example", err)
		}
		if got := append(newAuthorizations(reg, n), newAuthorizations(mirror, m)...); len(got) != 0 {
			t.Errorf("credentials for other.example were sent: %q", got)
		}
	})
	t.Run("server_address names the registry", func(t *testing.T) {
		m := len(mirror.Authorizations())
		if err := pullWith(h, "creds.test/app:1", creds("https://creds.test/v2/")); err != nil {
			t.Fatalf("pull: %v", err)
		}
		if got := newAuthorizations(mirror, m); len(got) != 0 {
			t.Errorf("the mirror received credentials: %q", got)
		}
	})
	t.Run("server_address names the plain-HTTP mirror", func(t *testing.T) {
		n, m := len(reg.Authorizations()), len(mirror.Authorizations())
		err := pullWith(h, "creds.test/app:1", creds("http://"+mirror.Host))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "allow_credentials_over_http") {
			t.Errorf("pull: %v, want Unauthenticated naming allow_credentials_over_http", err)
		}
		if got := append(newAuthorizations(reg, n), newAuthorizations(mirror, m)...); len(got) != 0 {
			t.Errorf("credentials were sent: %q", got)
		}
	})
	t.Run("plain HTTP not allowed", func(t *testing.T) {
		n := len(reg.Authorizations())
		err := pullWith(h, "plain.test/app:1", creds(""))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "allow_credentials_over_http") {
			t.Errorf("pull: %v, want Unauthenticated naming allow_credentials_over_http", err)
		}
		if got := newAuthorizations(reg, n); len(got) != 0 {
			t.Errorf("credentials went over plain HTTP to a host hosts.toml does not allow: %q", got)
		}
	})
	if strings.Contains(h.Log(), "s3cret") || strings.Contains(h.Log(), "a3ViZTpzM2NyZXQ") {
		t.Error("a credential was logged")
	}
}

// A registry's token service over plain HTTP on another host does not get
// the credentials, even when hosts.toml allows them over HTTP for the
// registry itself; on the registry's own host it does.
func TestPullCredentialsNotSentToAPlainHTTPRealm(t *testing.T) {
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte("tokened")}))
	realm := images.StartRegistry(t)
	elsewhere := images.StartRegistry(t)
	// "localhost", not 127.0.0.1: go-containerregistry refuses realms on
	// private IP literals, not on names.
	elsewhere.RequireToken("kube", "s3cret", fmt.Sprintf("http://localhost:%s/token", strings.Split(realm.Host, ":")[1]))
	elsewhere.Push(t, "app:1", img)
	own := images.StartRegistry(t)
	own.RequireToken("kube", "s3cret", "")
	own.Push(t, "app:1", img)
	dir := hostsDir(t, map[string]string{
		"elsewhere.test": fmt.Sprintf("server = \"http://%s\"\nallow_credentials_over_http = true\n", elsewhere.Host),
		"own.test":       fmt.Sprintf("server = \"http://%s\"\nallow_credentials_over_http = true\n", own.Host),
	})
	h := huskdWithHosts(t, dir, "")
	auth := &runtime.AuthConfig{Username: "kube", Password: "s3cret"}

	err := pullWith(h, "elsewhere.test/app:1", auth)
	if err == nil || !strings.Contains(err.Error(), "refusing to send credentials over plain HTTP to localhost:") {
		t.Errorf("pull with a realm on another host over HTTP: %v, want a refusal", err)
	}
	if got := realm.Authorizations(); len(got) != 0 {
		t.Errorf("the token realm over plain HTTP received credentials: %q", got)
	}
	if err := pullWith(h, "own.test/app:1", auth); err != nil {
		t.Errorf("pull with the realm on the registry's own allowed host: %v", err)
	}
}

// Concurrent pulls of one image with other credentials are not merged:
// a good credential succeeds beside a bad one, and a pull without
// credentials does not ride one that has them.
func TestConcurrentPullsWithOtherCredentialsAreNotMerged(t *testing.T) {
	reg := images.StartRegistry(t)
	reg.RequireBasicAuth("kube", "s3cret")
	reg.Push(t, "app:1", images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte("shared")})))
	dir := hostsDir(t, map[string]string{
		"merge.test": fmt.Sprintf("server = \"http://%s\"\nallow_credentials_over_http = true\n", reg.Host),
	})
	h := huskdWithHosts(t, dir, "")
	good := &runtime.AuthConfig{Username: "kube", Password: "s3cret"}
	bad := &runtime.AuthConfig{Username: "kube", Password: "wrong"}

	for _, round := range []struct {
		name  string
		pulls []*runtime.AuthConfig // in the order they start
	}{
		{"bad first", []*runtime.AuthConfig{bad, good, nil}},
		{"good first", []*runtime.AuthConfig{good, nil, bad}},
	} {
		t.Run(round.name, func(t *testing.T) {
			// Every manifest request waits, so that each pull is in flight
			// when the next starts.
			held, release := reg.Hold(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") })
			defer release()
			errs := make([]error, len(round.pulls))
			var wg sync.WaitGroup
			for i, a := range round.pulls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = pullWith(h, "merge.test/app:1", a)
				}()
				// Until the pull is in flight (or it rides another; then
				// the wait ends without it and the pulls below tell).
				deadline := time.Now().Add(10 * time.Second)
				for held() < i+1 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			release()
			wg.Wait()
			for i, a := range round.pulls {
				switch a {
				case good:
					if errs[i] != nil {
						t.Errorf("the pull with good credentials failed: %v", errs[i])
					}
				default:
					if status.Code(errs[i]) != codes.Unauthenticated {
						t.Errorf("the pull with credentials %v: %v, want Unauthenticated", a, errs[i])
					}
				}
			}
		})
	}
}

// vmKiB reads a field of /proc/<pid>/status ("VmHWM", "VmRSS").
func vmKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// releaseBinaries makes the test's huskd the release build: its memory is
// what these tests measure, and the race detector's shadow memory (make
// test's integration binaries are race-built) multiplies every heap
// allocation several times over.
func releaseBinaries(t *testing.T) {
	if bin := os.Getenv("HUSK_RELEASE_BIN"); bin != "" {
		t.Setenv("HUSK_BIN", bin)
	}
}

// peakGrowth runs fn and returns how far above its resident memory at
// the start huskd's peak went meanwhile, in MiB.
func peakGrowth(t *testing.T, h *huskdtest.Huskd, fn func()) int64 {
	t.Helper()
	// "5" resets the peak (VmHWM) to the current resident size.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", h.PID()), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	base := vmKiB(t, h.PID(), "VmRSS")
	fn()
	return (vmKiB(t, h.PID(), "VmHWM") - base) >> 10
}

// What a registry sends is read against a bound: an oversized manifest or
// config, a layer larger than its manifest says, and a layer that expands
// past the configured caps each fail their pull quickly, naming the limit,
// and huskd's memory does not grow by their size.
func TestPullRefusesOversizedContent(t *testing.T) {
	releaseBinaries(t)
	h, reg := imageHuskd(t, "[image]\nmax_layer_bytes = 8388608\nmax_layer_files = 100\n")
	const huge = 64 << 20
	const manifestType = "application/vnd.oci.image.manifest.v1+json"
	path := func(p string) func(*http.Request) bool {
		return func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == p }
	}
	img := images.Image(images.Config{}, images.Layer(images.File{Name: "f", Body: []byte("small")}))
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()

	cases := []struct {
		name  string
		setup func(sent *atomic.Int64) string // returns the reference to pull
		says  string
	}{
		{"manifest", func(sent *atomic.Int64) string {
			reg.Override(path("/v2/test/bigmanifest/manifests/1"), images.Filler(huge, false, manifestType, sent))
			return "registry.k8s.io/test/bigmanifest:1"
		}, "manifest is larger than the 4 MiB limit on manifests"},
		{"config", func(sent *atomic.Int64) string {
			digest := "sha256:" + strings.Repeat("c", 64)
			manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`,
				manifestType, digest, huge)
			reg.Override(path("/v2/test/bigconfig/manifests/1"), func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", manifestType)
				_, _ = w.Write([]byte(manifest))
			})
			reg.Override(path("/v2/test/bigconfig/blobs/"+digest), images.Filler(huge, true, "", sent))
			return "registry.k8s.io/test/bigconfig:1"
		}, "is larger than the 4 MiB limit on image configs"},
		{"layer larger than its manifest says", func(sent *atomic.Int64) string {
			reg.Push(t, "test/liar:1", img)
			reg.Override(path("/v2/test/liar/blobs/"+layerDigest.String()), images.Filler(4*huge, false, "", sent))
			return "registry.k8s.io/test/liar:1"
		}, "is larger than the size its manifest gives"},
		{"layer over max_layer_bytes", func(*atomic.Int64) string {
			reg.Push(t, "test/bomb:1", images.Image(images.Config{}, images.Layer(images.File{Name: "zeros", Body: make([]byte, 16<<20)})))
			return "registry.k8s.io/test/bomb:1"
		}, "expands to more than 8388608 bytes ([image] max_layer_bytes)"},
		{"layer over max_layer_files", func(*atomic.Int64) string {
			var files []images.File
			for i := 0; i < 200; i++ {
				files = append(files, images.File{Name: fmt.Sprintf("f%03d", i)})
			}
			reg.Push(t, "test/many:1", images.Image(images.Config{}, images.Layer(files...)))
			return "registry.k8s.io/test/many:1"
		}, "holds more than 100 files ([image] max_layer_files)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sent atomic.Int64
			ref := c.setup(&sent)
			var err error
			start := time.Now()
			grew := peakGrowth(t, h, func() { err = pullWith(h, ref, nil) })
			took := time.Since(start)
			t.Logf("pull: %v; took %s, peak RSS +%d MiB, %d MiB sent", err, took.Round(time.Millisecond), grew, sent.Load()>>20)
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), c.says) {
				t.Errorf("pull: %v, want ResourceExhausted saying %q", err, c.says)
			}
			if grew > 32 {
				t.Errorf("huskd's peak memory grew by %d MiB", grew)
			}
			if n := sent.Load(); n > 32<<20 {
				t.Errorf("the registry got to send %d MiB before the pull gave up", n>>20)
			}
			if got, _ := imageInfo(t, h, ref); got != nil {
				t.Errorf("the image was recorded: %v", got)
			}
			for _, d := range []string{"layers", "tmp"} {
				if left, _ := os.ReadDir(filepath.Join(h.Root, "images", d)); len(left) != 0 {
					t.Errorf("%s left: %v", d, left)
				}
			}
		})
	}
}

// The unpacker does not keep every directory's header until the end of
// the layer: a layer of many directories with large PAX records (small
// once compressed) does not grow huskd's memory by their size.
func TestUnpackMemoryDoesNotGrowWithDirectories(t *testing.T) {
	releaseBinaries(t)
	h, reg := imageHuskd(t, "")
	padding := strings.Repeat("p", 64<<10)
	var files []images.File
	for i := 0; i < 2000; i++ { // 125 MiB of headers
		files = append(files, images.File{Name: fmt.Sprintf("d%04d/", i), PAX: map[string]string{"husk.padding": padding}})
	}
	reg.Push(t, "test/dirs:1", images.Image(images.Config{}, images.Layer(files...)))
	var err error
	grew := peakGrowth(t, h, func() { err = pullWith(h, "registry.k8s.io/test/dirs:1", nil) })
	t.Logf("pull: %v; peak RSS +%d MiB", err, grew)
	if err != nil {
		t.Fatal(err)
	}
	if grew > 48 {
		t.Errorf("huskd's peak memory grew by %d MiB unpacking a layer of 2000 directories with 64 KiB of PAX records each", grew)
	}
}

// An image's /etc/passwd and /etc/group are scanned line by line at
// CreateContainer, not read whole: a huge passwd does not grow huskd's
// memory, and the user at its end is still found.
func TestCreateContainerStreamsPasswd(t *testing.T) {
	releaseBinaries(t)
	h, reg := imageHuskd(t, "")
	var passwd, group strings.Builder
	for i := 0; passwd.Len() < 128<<20; i++ {
		fmt.Fprintf(&passwd, "user%07d:x:%d:%d:a user of a very large directory service:/home/user%07d:/bin/sh\n", i, 100000+i, 100000+i, i)
	}
	passwd.WriteString("app:x:4242:4343::/home/app:/bin/sh\n")
	for i := 0; group.Len() < 32<<20; i++ {
		fmt.Fprintf(&group, "group%07d:x:%d:someone,else\n", i, 100000+i)
	}
	group.WriteString("apps:x:4444:root,app\n")
	bb, err := images.BusyboxPath()
	if err != nil {
		t.Skip(err)
	}
	bbFiles, err := images.BusyboxFiles(bb)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "test/bigpasswd:1", images.Image(images.Config{User: "app"}, images.Layer(bbFiles...), images.Layer(
		images.File{Name: "etc/"},
		images.File{Name: "etc/passwd", Body: []byte(passwd.String())},
		images.File{Name: "etc/group", Body: []byte(group.String())},
	)))
	passwd.Reset()
	group.Reset()
	const ref = "registry.k8s.io/test/bigpasswd:1"
	if err := pullWith(h, ref, nil); err != nil {
		t.Fatal(err)
	}
	pod, podCfg := podWithLogs(t, h, "bigpasswd", nil)
	cfg := ctrConfig("app", "true")
	cfg.Image = spec(ref)
	var id string
	start := time.Now()
	grew := peakGrowth(t, h, func() { id = createCtr(t, h, pod, podCfg, cfg) })
	t.Logf("CreateContainer with a 128 MiB passwd and a 32 MiB group: %s, peak RSS +%d MiB", time.Since(start).Round(time.Millisecond), grew)
	if grew > 32 {
		t.Errorf("huskd's peak memory grew by %d MiB: passwd or group was read whole", grew)
	}
	u := ctrStatus(t, h, id).GetUser().GetLinux()
	if u.GetUid() != 4242 || u.GetGid() != 4343 || len(u.GetSupplementalGroups()) == 0 || !containsInt(u.GetSupplementalGroups(), 4444) {
		t.Errorf("user %v, want uid 4242, gid 4343, groups with 4444 (the last lines of passwd and group)", u)
	}
}

func containsInt(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
