package image

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRateWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type obs struct {
		ms   int
		n    int64
		got  int64
		slow bool
	}
	// A window of 1s that must see 100 bytes.
	for _, tc := range []struct {
		name string
		obs  []obs
	}{
		{"younger than a window is never slow", []obs{{250, 0, 0, false}, {500, 1, 1, false}, {999, 2, 2, false}}},
		{"nothing for a whole window", []obs{{500, 0, 0, false}, {1000, 0, 0, true}}},
		{"a byte a second", []obs{{250, 1, 1, false}, {500, 1, 1, false}, {1000, 1, 1, true}}},
		{"fast enough", []obs{{500, 60, 60, false}, {1000, 120, 120, false}, {1500, 200, 140, false}, {2000, 240, 120, false}}},
		{"fast, then a trickle", []obs{{500, 1000, 1000, false}, {1000, 1010, 1010, false}, {1500, 1020, 20, true}}},
		{"the window is measured from the newest sample a window old", []obs{
			{250, 0, 0, false}, {1000, 0, 0, true}}},
		{"a burst resets the window", []obs{{900, 0, 0, false}, {1000, 100, 100, false}, {1900, 150, 150, false}, {2000, 199, 99, true}}},
		{"exactly the minimum is enough", []obs{{1000, 100, 100, false}, {2000, 200, 100, false}}},
		{"irregular ticks use the newest sample at least a window old", []obs{
			{300, 50, 50, false}, {1200, 120, 120, false}, {1400, 160, 110, false}, {2300, 200, 80, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRateWindow(t0, time.Second, 100)
			for _, o := range tc.obs {
				got, slow := w.observe(at(o.ms), o.n)
				if got != o.got || slow != o.slow {
					t.Fatalf("at %dms with %d bytes: got %d slow %v, want %d %v", o.ms, o.n, got, slow, o.got, o.slow)
				}
			}
			if len(w.samples) > 4 {
				t.Errorf("%d samples kept: old ones must go", len(w.samples))
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		lim         blobLimit
		want        string
	}{
		{"GET", "http://r/v2/", blobLimit{}, "the registry's API check (GET /v2/)"},
		{"HEAD", "http://r/v2/library/busybox/manifests/latest", blobLimit{}, "manifest library/busybox:latest"},
		{"GET", "http://r/v2/a/b/manifests/sha256:ab", blobLimit{}, "manifest a/b@sha256:ab"},
		{"GET", "http://r/v2/a/blobs/sha256:cd", blobLimit{what: "image config"}, "image config sha256:cd"},
		{"GET", "http://r/v2/a/blobs/sha256:cd", blobLimit{}, "blob sha256:cd"},
		{"GET", "http://auth/token?scope=x", blobLimit{}, "the auth token (GET /token)"},
		{"GET", "http://r/v2/_catalog", blobLimit{}, "GET /v2/_catalog"},
	} {
		r := httptest.NewRequest(tc.method, tc.url, nil)
		if got := describe(r, tc.lim, strings.Contains(r.URL.Path, "/blobs/")); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}

// A manifest that drips, or never comes, fails after the timeout naming
// it and the host; a layer blob is left to the progress watchdog.
func TestSmallObjectTransport(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/redirect/"):
			http.Redirect(w, r, "/cdn/object", http.StatusTemporaryRedirect)
		case strings.Contains(r.URL.Path, "/hang/"):
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		default: // a byte every 20ms, forever
			w.WriteHeader(http.StatusOK)
			for {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}))
	defer srv.Close()
	defer close(stop)
	const limit = 200 * time.Millisecond
	tr := smallObjectTransport{next: http.DefaultTransport, timeout: limit}
	client := &http.Client{Transport: tr}
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct{ path, what string }{
		{"/v2/drip/manifests/1", "manifest drip:1"},
		{"/v2/hang/manifests/1", "manifest hang:1"},
	} {
		start := time.Now()
		var err error
		resp, err := client.Get(srv.URL + tc.path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		took := time.Since(start)
		var so errSlowObject
		if !errors.As(err, &so) || so.what != tc.what || so.host != host {
			t.Errorf("%s: %v, want errSlowObject naming %q and %s", tc.path, err, tc.what, host)
		} else if !strings.Contains(err.Error(), "small_object_timeout") {
			t.Errorf("%s: %v does not name the key", tc.path, err)
		}
		if took < limit || took > 10*limit {
			t.Errorf("%s failed after %s, want about %s", tc.path, took, limit)
		}
	}

	// An image config is, even from where the registry redirects it.
	cctx := withBlobLimit(context.Background(), "image config", MaxConfigBytes, "")
	req, _ := http.NewRequestWithContext(cctx, "GET", srv.URL+"/v2/redirect/blobs/sha256:cd", nil)
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if so := (errSlowObject{}); !errors.As(err, &so) || so.what != "image config sha256:cd" {
		t.Errorf("redirected config: %v, want errSlowObject naming image config sha256:cd", err)
	}

	// A layer is not a small object: it still flows past the limit, from
	// the registry or from where it redirects.
	for _, path := range []string{"/v2/drip/blobs/sha256:ab", "/v2/redirect/blobs/sha256:ab"} {
		ctx := withLayerLimit(context.Background(), "sha256:ab", 1<<20)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * limit)
		var n int
		buf := make([]byte, 16)
		for time.Now().Before(deadline) {
			k, err := resp.Body.Read(buf)
			n += k
			if err != nil {
				t.Fatalf("%s: layer body after %d bytes: %v", path, n, err)
			}
		}
		resp.Body.Close()
	}
}

// A layer that still trickles is reported slow; one that has stopped is
// left to the no-progress check, whose message says so.
func TestSlowLayer(t *testing.T) {
	const window = time.Second
	for _, tc := range []struct {
		name     string
		bytes    int64
		lastByte time.Duration // after the body started
		slow     bool
	}{
		{"trickling", 20, 900 * time.Millisecond, true},
		{"stopped early", 16, 0, false},
		{"fast enough", 200, 900 * time.Millisecond, false},
		{"trickled, stopped half a window ago", 20, 500 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := &progress{minRate: 100, window: window}
			b := &countingBody{pr: pr, layer: "layer sha256:ab", host: "r:5000"}
			pr.begin()
			pr.track(b)
			start := time.Unix(0, b.last.Load())
			pr.layers[b] = newRateWindow(start, window, 100)
			b.n.Store(tc.bytes)
			b.last.Store(start.Add(tc.lastByte).UnixNano())
			err := pr.slowLayer(start.Add(window))
			var sl errSlowLayer
			if got := errors.As(err, &sl); got != tc.slow {
				t.Fatalf("slowLayer: %v, want slow %v", err, tc.slow)
			}
			if tc.slow && (sl.got != tc.bytes || sl.layer != "layer sha256:ab" || sl.host != "r:5000") {
				t.Errorf("%+v", sl)
			}
			b.end()
			if len(pr.layers) != 0 || pr.inFlight != 0 {
				t.Errorf("a body that ended is still tracked: %d layers, %d in flight", len(pr.layers), pr.inFlight)
			}
		})
	}
}
