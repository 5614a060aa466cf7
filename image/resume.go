package image

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxResumes bounds how often one layer body is resumed: a registry that
// resets every connection fails the pull instead of looping.
const maxResumes = 3

// resumeTransport resumes a layer body cut off mid-way (a connection reset
// or closed early) with a Range request for the rest, instead of failing
// a pull of gigabytes for one bad connection. What the registry answers is
// checked: a 206 must cover exactly the bytes asked for, a 200 (Range
// ignored) is read past what was already received; anything else fails
// the layer naming what came back. The blob's digest is checked when it is
// stored anyway, so wrong bytes can never become a layer.
type resumeTransport struct {
	next http.RoundTripper
}

func (t resumeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	if lim, ok := blobHop(r); ok && lim.layer && r.Method == http.MethodGet {
		resp.Body = &resumingBody{t: t, req: r, rc: resp.Body, size: lim.limit, what: lim.what}
	}
	return resp, nil
}

type resumingBody struct {
	t       resumeTransport
	req     *http.Request
	rc      io.ReadCloser
	size    int64 // the blob's, from its manifest
	what    string
	got     int64
	resumes int
	failed  error // the error that came with the last bytes read
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := 0, b.failed
		if err == nil {
			n, err = b.rc.Read(p)
			b.got += int64(n)
		}
		b.failed = nil
		if err == nil || err == io.EOF {
			return n, err
		}
		if n > 0 {
			// Those bytes are good; the error is for the next Read.
			b.failed = err
			return n, nil
		}
		if b.req.Context().Err() != nil || b.got == 0 || b.got >= b.size || b.resumes >= maxResumes {
			return 0, err
		}
		b.resumes++
		if rerr := b.resume(); rerr != nil {
			return 0, fmt.Errorf("%w (resuming at byte %d: %v)", err, b.got, rerr)
		}
	}
}

// resume replaces the body with the rest of the blob from byte got on.
func (b *resumingBody) resume() error {
	b.rc.Close()
	b.rc = io.NopCloser(strings.NewReader("")) // if the request fails
	req := b.req.Clone(b.req.Context())
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.got))
	resp, err := b.t.next.RoundTrip(req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		want := fmt.Sprintf("bytes %d-%d/", b.got, b.size-1)
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, want) || !validRangeTotal(strings.TrimPrefix(cr, want), b.size) {
			resp.Body.Close()
			return fmt.Errorf("registry %s answered a Range request for %s from byte %d with Content-Range %q", req.URL.Host, b.what, b.got, cr)
		}
	case http.StatusOK:
		// Range ignored: the whole blob again; skip what we have.
		if _, err := io.CopyN(io.Discard, resp.Body, b.got); err != nil {
			resp.Body.Close()
			return fmt.Errorf("re-reading the first %d bytes of %s: %w", b.got, b.what, err)
		}
	default:
		resp.Body.Close()
		return fmt.Errorf("registry %s answered a Range request for %s with %s", req.URL.Host, b.what, resp.Status)
	}
	b.rc = resp.Body
	return nil
}

// validRangeTotal accepts a Content-Range total that is the blob's size
// or unknown ("*").
func validRangeTotal(total string, size int64) bool {
	return total == "*" || total == fmt.Sprint(size)
}

func (b *resumingBody) Close() error { return b.rc.Close() }
