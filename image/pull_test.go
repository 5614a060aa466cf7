package image

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type fixedBodyTransport struct{ body string }

func (t fixedBodyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(t.body))}, nil
}

// The progress clock runs only while a response is awaited: not before
// the first request, nor after a body is read to its end or closed (the
// pull is then writing or unpacking, cri-o#8760), and it runs from the
// last byte while one is.
func TestProgressCountsOnlyNetworkWaits(t *testing.T) {
	pr := &progress{}
	tr := countingTransport{fixedBodyTransport{"abc"}, pr}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	if d := pr.idle(later()); d != 0 {
		t.Fatalf("idle before any request: %s", d)
	}
	req, _ := http.NewRequest("GET", "http://registry.invalid/v2/", nil)

	// Read to the end, then closed: ended once.
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if d := pr.idle(later()); d < 59*time.Minute {
		t.Errorf("idle with a response being awaited, an hour on: %s", d)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "abc" {
		t.Errorf("body %q", b)
	}
	if d := pr.idle(later()); d != 0 {
		t.Errorf("idle after the body was read to its end: %s", d)
	}
	resp.Body.Close()
	resp.Body.Close()

	// Closed unread, with another still open.
	r1, _ := tr.RoundTrip(req)
	r2, _ := tr.RoundTrip(req)
	r1.Body.Close()
	if d := pr.idle(later()); d < 59*time.Minute {
		t.Errorf("idle with a response still open: %s", d)
	}
	r2.Body.Close()
	if d := pr.idle(later()); d != 0 || pr.inFlight != 0 {
		t.Errorf("idle after every body was closed: %s (%d in flight)", d, pr.inFlight)
	}
	if got := pr.done.Load(); got != 3 {
		t.Errorf("bytes counted: %d, want 3", got)
	}
}
