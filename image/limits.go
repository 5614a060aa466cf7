package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
)

// What a registry sends is read against a bound, never whole: a manifest
// or an index is held in memory, so is an image config, and a layer goes
// to disk only up to the size its descriptor gives.
const (
	// MaxManifestBytes bounds a manifest or an index: containerd's limit
	// (core/remotes/docker) and CRI-O's (containers/image iolimits).
	MaxManifestBytes = 4 << 20
	// MaxConfigBytes bounds an image config, as containers/image does.
	MaxConfigBytes = 4 << 20
)

// errTooLarge is a response larger than husk reads.
type errTooLarge struct {
	what  string // "manifest", "image config", "layer sha256:..."
	limit int64
	why   string // which limit: "the 4 MiB limit on manifests"
}

func (e errTooLarge) Error() string {
	return fmt.Sprintf("%s is larger than %s (%d bytes)", e.what, e.why, e.limit)
}

// blobLimit is the bound on blob responses of a request's context: what
// the blob is and the most bytes it may have.
type blobLimit struct {
	what  string
	limit int64
	why   string
	layer bool // a layer blob: bounded by progress, not small_object_timeout
}

type blobLimitKey struct{}

// withBlobLimit bounds the blob responses of requests made under ctx.
func withBlobLimit(ctx context.Context, what string, limit int64, why string) context.Context {
	return context.WithValue(ctx, blobLimitKey{}, blobLimit{what: what, limit: limit, why: why})
}

// withLayerLimit bounds a layer blob to the size its manifest gives.
func withLayerLimit(ctx context.Context, digest string, size int64) context.Context {
	return context.WithValue(ctx, blobLimitKey{}, blobLimit{what: "layer " + digest, limit: size, why: "the size its manifest gives", layer: true})
}

// blobHop says whether r fetches a blob: a registry's /blobs/ path, or a
// redirect from one (registries send blobs from object stores and CDNs,
// whose paths say nothing), and returns the bound of its context. Pings
// and token requests made under the same context are not blob hops.
func blobHop(r *http.Request) (blobLimit, bool) {
	lim, ok := r.Context().Value(blobLimitKey{}).(blobLimit)
	if !ok || strings.Contains(r.URL.Path, "/manifests/") {
		return blobLimit{}, false
	}
	return lim, strings.Contains(r.URL.Path, "/blobs/") || r.Response != nil
}

// limitTransport bounds response bodies: manifests to MaxManifestBytes,
// blobs to the limit of the request's context. A declared Content-Length
// over the bound fails at once; a body that runs past it fails on the
// first byte too many, so nothing larger is ever buffered or stored.
type limitTransport struct {
	next http.RoundTripper
}

func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	lim, ok := blobHop(r)
	if strings.Contains(r.URL.Path, "/manifests/") {
		lim, ok = blobLimit{what: "manifest", limit: MaxManifestBytes, why: "the 4 MiB limit on manifests"}, true
	}
	if !ok {
		return t.next.RoundTrip(r)
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	tooLarge := errTooLarge{what: lim.what, limit: lim.limit, why: lim.why}
	if resp.ContentLength > lim.limit {
		resp.Body.Close()
		return nil, tooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: lim.limit, err: tooLarge}
	return resp, nil
}

// limitedBody fails with err once more than its limit is read.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.err
	}
	// Ask for one byte past the limit: that byte is the proof.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// asLimitError gives errors of husk's limits the kind they are reported
// with: the image is larger than this node takes, and pulling it again
// will not change that.
func asLimitError(err error) (error, bool) {
	var tl errTooLarge
	if errors.As(err, &tl) || errors.Is(err, layer.ErrLimit) {
		return errdefs.ResourceExhausted("%v", err), true
	}
	return err, false
}
