package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huskrt/husk/conformance/images"
)

func TestResumeTransport(t *testing.T) {
	blob := make([]byte, 100<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(blob)
	half := len(blob) / 2
	for _, tc := range []struct {
		name string
		// rangeReq answers a request with a Range header.
		rangeReq func(w http.ResponseWriter, r *http.Request)
		ranges   int32  // Range requests expected
		err      string // "" when the whole blob reads
	}{
		{"resumed with a good 206", func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
		}, 1, ""},
		{"Range ignored: 200 with the whole blob", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			_, _ = w.Write(blob)
		}, 1, ""},
		{"206 for the wrong range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-99/%d", len(blob)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(blob[:100])
		}, 1, `with Content-Range "bytes 0-99/102400"`},
		{"206 for another size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", half, len(blob)-1, 2*len(blob)))
			w.WriteHeader(http.StatusPartialContent)
		}, 1, "Content-Range"},
		{"404 to the Range request", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "gone", http.StatusNotFound)
		}, 1, "404 Not Found"},
		{"every connection reset", func(w http.ResponseWriter, r *http.Request) {
			var from int
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(blob)-1, len(blob)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(blob[from : from+100])
			images.ResetConnection(w)
		}, maxResumes, "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ranges atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "" {
					ranges.Add(1)
					tc.rangeReq(w, r)
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
				_, _ = w.Write(blob[:half])
				images.ResetConnection(w)
			}))
			defer srv.Close()
			ctx := withLayerLimit(context.Background(), "sha256:ab", int64(len(blob)))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/a/blobs/sha256:ab", nil)
			client := &http.Client{Transport: resumeTransport{next: http.DefaultTransport}}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if n := ranges.Load(); n != tc.ranges {
				t.Errorf("%d Range requests, want %d", n, tc.ranges)
			}
			if tc.err == "" {
				if err != nil || !bytes.Equal(got, blob) {
					t.Fatalf("read %d of %d bytes (equal: %v): %v", len(got), len(blob), bytes.Equal(got, blob), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one saying %q", err, tc.err)
			}
			if !bytes.Equal(got, blob[:len(got)]) {
				t.Errorf("the %d bytes read before the error are not the blob's", len(got))
			}
		})
	}
}
