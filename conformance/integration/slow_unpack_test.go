package integration

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/conformance/images"
)

// Slow unpacking is not a stalled pull (cri-o#8760): progress_timeout
// measures the time a pull waits on the registry, not the time it spends
// writing layers to disk. The registry serves at once; the first layer,
// tens of thousands of empty files, takes longer than progress_timeout to
// unpack; with one download at a time the second layer is fetched only
// after that, so a watchdog that also counted the unpack would cancel the
// pull before it. A registry that stalls after a slow unpack still fails
// the pull after progress_timeout.
func TestSlowUnpackIsNotAStalledPull(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h, reg := imageHuskd(t, fmt.Sprintf("[image]\nprogress_timeout = %q\nmax_concurrent_downloads = 1\n", timeout))
	ctx := context.Background()

	// many empty files in 100 directories: each costs the unpacker a
	// create, a chown, a chmod and a utimes, and the compressed layer is
	// small enough for the registry to send at once.
	many := func(n int, tag string) []images.File {
		var fs []images.File
		for d := 0; d < 100; d++ {
			fs = append(fs, images.File{Name: fmt.Sprintf("%s%d/", tag, d)})
			for i := 0; i < n/100; i++ {
				fs = append(fs, images.File{Name: fmt.Sprintf("%s%d/f%d", tag, d, i)})
			}
		}
		return fs
	}
	const files = 12000
	slow := images.Layer(many(files, "d")...)
	slowDigest, _ := slow.Digest()
	img := images.Image(images.Config{}, slow, images.Layer(images.File{Name: "after", Body: []byte("a")}))
	reg.Push(t, "test/slow-unpack:1", img)

	start := time.Now()
	resp, err := h.RawImages.PullImage(ctx, &runtime.PullImageRequest{Image: spec("registry.k8s.io/test/slow-unpack:1")})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("pull whose layer unpacks for longer than progress_timeout (%s), after %s: %v", timeout, took, err)
	}
	// The premise: the layer really took longer than progress_timeout to
	// unpack (huskd logs each layer's fetch and unpack times at V(3)).
	unpack := layerTime(t, h.Log(), slowDigest.String(), "unpack")
	if unpack <= timeout {
		t.Fatalf("the slow layer unpacked in %s, not longer than progress_timeout %s: the test proves nothing (make it bigger)", unpack, timeout)
	}
	t.Logf("pull %s, slow layer of %d files unpacked in %s (progress_timeout %s)", took, files, unpack, timeout)
	if st, err := h.RawImages.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec(resp.ImageRef)}); err != nil || st.Image == nil {
		t.Errorf("ImageStatus of the pulled image: %v %v", st, err)
	}

	// The opposite still holds: after a slow unpack, a registry that
	// stops sending the next layer fails the pull after progress_timeout.
	stalled := images.Layer(images.File{Name: "stalled", Body: []byte(strings.Repeat("s", 1<<20))})
	stalledDigest, _ := stalled.Digest()
	slow2 := images.Layer(many(files, "e")...)
	slow2Digest, _ := slow2.Digest()
	reg.Push(t, "test/slow-unpack:2", images.Image(images.Config{}, slow2, stalled))
	reg.Stall(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, stalledDigest.String()) })
	defer reg.Stall(nil)
	start = time.Now()
	_, err = h.RawImages.PullImage(ctx, &runtime.PullImageRequest{Image: spec("registry.k8s.io/test/slow-unpack:2")})
	took = time.Since(start)
	if want := fmt.Sprintf("no progress for %s", timeout); status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), want) {
		t.Errorf("pull stalled after a slow unpack: %v, want DeadlineExceeded saying %q", err, want)
	}
	if unpack := layerTime(t, h.Log(), slow2Digest.String(), "unpack"); took < unpack+timeout {
		t.Errorf("stalled pull failed after %s, before its slow unpack (%s) and progress_timeout (%s)", took, unpack, timeout)
	}
	t.Logf("pull stalled after a slow unpack failed after %s: %v", took, err)
	if took > 30*time.Second {
		t.Errorf("stalled pull took %s", took)
	}
}

// layerTime reads a duration (fetch or unpack) of a layer from huskd's
// "Layer pulled" log line.
func layerTime(t *testing.T, log, digest, key string) time.Duration {
	t.Helper()
	re := regexp.MustCompile(`"Layer pulled".*layer="` + regexp.QuoteMeta(digest) + `".*` + key + `="([^"]+)"`)
	m := re.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no %q line for layer %s with %s in huskd's log", "Layer pulled", digest, key)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("layer %s: %s=%q: %v", digest, key, m[1], err)
	}
	return d
}
