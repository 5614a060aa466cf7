package image

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/huskrt/husk/internal/errdefs"
)

type bodyTransport struct {
	body   string
	length int64
}

func (b bodyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(b.body)), ContentLength: b.length}, nil
}

func TestLimitTransport(t *testing.T) {
	big := strings.Repeat("m", MaxManifestBytes+1)
	layerCtx := withBlobLimit(context.Background(), "layer sha256:ab", 10, "the size its manifest gives")
	cases := []struct {
		name   string
		ctx    context.Context
		path   string
		body   string
		length int64
		err    string // "" when the whole body reads
	}{
		{"manifest at the limit", context.Background(), "/v2/a/manifests/1", big[1:], -1, ""},
		{"manifest over, no length", context.Background(), "/v2/a/manifests/1", big, -1, "manifest is larger than the 4 MiB limit on manifests"},
		{"manifest over, declared", context.Background(), "/v2/a/manifests/1", "", int64(len(big)), "manifest is larger"},
		{"layer at its size", layerCtx, "/v2/a/blobs/sha256:ab", "0123456789", 10, ""},
		{"layer over its size", layerCtx, "/v2/a/blobs/sha256:ab", "0123456789x", -1, "layer sha256:ab is larger than the size its manifest gives (10 bytes)"},
		{"layer declared over", layerCtx, "/v2/a/blobs/sha256:ab", "", 1 << 40, "layer sha256:ab is larger"},
		{"no limit for other paths", layerCtx, "/token", strings.Repeat("t", 100), -1, ""},
		{"layer redirected to a CDN", layerCtx, "/cdn/object?sig=1", "0123456789x", -1, "layer sha256:ab is larger"},
		{"no limit for blobs without one", context.Background(), "/v2/a/blobs/sha256:ab", strings.Repeat("b", 100), -1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lt := limitTransport{next: bodyTransport{c.body, c.length}}
			req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, "https://r"+c.path, nil)
			if strings.HasPrefix(c.path, "/cdn/") {
				from, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, "https://r/v2/a/blobs/sha256:ab", nil)
				req.Response = &http.Response{StatusCode: http.StatusTemporaryRedirect, Request: from}
			}
			resp, err := lt.RoundTrip(req)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, resp.Body)
			}
			if c.err == "" {
				if err != nil || n != int64(len(c.body)) {
					t.Fatalf("read %d of %d bytes: %v", n, len(c.body), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want one saying %q", err, c.err)
			}
			if lerr, ok := asLimitError(err); !ok || !errors.Is(lerr, errdefs.ErrResourceExhausted) {
				t.Errorf("not a limit error: %v", lerr)
			}
		})
	}
}
