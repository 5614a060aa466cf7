package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// A registry that sends a byte a second resets a no-byte watchdog
// forever (containerd's image_pull_progress_timeout counts any byte as
// progress; containerd#12138, microk8s#5404). Two bounds close that:
// small objects must arrive whole within a deadline, and a layer must keep
// a minimum rate over a window.

// rateWindow says whether a stream receives at least min bytes in every
// window of its life: fed the bytes received so far at each tick, it
// compares them with what had arrived one window earlier. A stream
// younger than a window is never slow.
type rateWindow struct {
	window time.Duration
	min    int64
	// samples, oldest first; once the stream is a window old, the first
	// is the newest taken at or before now-window.
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  int64
}

func newRateWindow(start time.Time, window time.Duration, min int64) *rateWindow {
	return &rateWindow{window: window, min: min, samples: []rateSample{{start, 0}}}
}

// observe records that n bytes have arrived in all by at, and returns the
// bytes of the last window and whether they fall short of its minimum.
func (w *rateWindow) observe(at time.Time, n int64) (got int64, slow bool) {
	w.samples = append(w.samples, rateSample{at, n})
	cut := at.Add(-w.window)
	i := 0
	for i+1 < len(w.samples) && !w.samples[i+1].at.After(cut) {
		i++
	}
	w.samples = w.samples[i:]
	first := w.samples[0]
	got = n - first.n
	if first.at.After(cut) {
		return got, false
	}
	return got, got < w.min
}

// errSlowLayer is the cause of a pull cancelled because a layer stayed
// below [image] min_progress_bytes_per_second for a whole window.
type errSlowLayer struct {
	layer, host string
	got         int64
	window      time.Duration
	rate        int64
}

func (e errSlowLayer) Error() string {
	return fmt.Sprintf("%s from %s: %d bytes in the last %s, below [image] min_progress_bytes_per_second (%d)",
		e.layer, e.host, e.got, e.window, e.rate)
}

// errSlowObject is a small object (manifest, index, config, token, the
// registry's API check) that did not arrive whole in time.
type errSlowObject struct {
	what, host string
	limit      time.Duration
}

func (e errSlowObject) Error() string {
	return fmt.Sprintf("%s from %s did not arrive whole within %s ([image] small_object_timeout)", e.what, e.host, e.limit)
}

// smallObjectTransport gives every request but a layer's a deadline for
// its whole response, headers and body: these objects are small (at most
// 4 MiB, usually a few KiB), so a registry that drips them is broken or
// hostile, not slow. Layers are bounded by the progress watchdog instead.
type smallObjectTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (t smallObjectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	lim, isBlob := blobHop(r)
	if isBlob && lim.layer {
		return t.next.RoundTrip(r)
	}
	cause := errSlowObject{what: describe(r, lim, isBlob), host: r.URL.Host, limit: t.timeout}
	ctx, cancel := context.WithTimeoutCause(r.Context(), t.timeout, cause)
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		err = causeOf(ctx, err)
		cancel()
		return nil, err
	}
	resp.Body = &deadlineBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
}

// describe names what a request fetches, for the error that says it came
// too slowly.
func describe(r *http.Request, lim blobLimit, isBlob bool) string {
	// A redirect hop is named by the registry request it came from.
	for r.Response != nil && r.Response.Request != nil {
		r = r.Response.Request
	}
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return "the registry's API check (" + r.Method + " /v2/)"
	case strings.Contains(p, "/manifests/"):
		repo, ref, _ := strings.Cut(strings.TrimPrefix(p, "/v2/"), "/manifests/")
		sep := ":"
		if strings.Contains(ref, ":") {
			sep = "@"
		}
		return "manifest " + repo + sep + ref
	case isBlob && lim.what != "":
		return lim.what + " " + p[strings.LastIndex(p, "/")+1:]
	case isBlob:
		return "blob " + p[strings.LastIndex(p, "/")+1:]
	case !strings.HasPrefix(p, "/v2/"):
		return "the auth token (" + r.Method + " " + p + ")"
	}
	return r.Method + " " + p
}

// causeOf returns why ctx ended, if it ended with a slow object: net/http
// reports a cancelled request as the context's error, not its cause.
func causeOf(ctx context.Context, err error) error {
	if c, ok := context.Cause(ctx).(errSlowObject); ok {
		return c
	}
	return err
}

// deadlineBody keeps its request's deadline until the body is closed.
type deadlineBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = causeOf(b.ctx, err)
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}
