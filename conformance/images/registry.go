package images

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an OCI registry on 127.0.0.1 (go-containerregistry's, in
// process), with hooks for the faults tests need.
type Registry struct {
	Host string // 127.0.0.1:port

	srv     *http.Server
	handler http.Handler

	mu        sync.Mutex
	blobGets  map[string]int // digest → GETs served
	stall     func(r *http.Request) bool
	tamper    map[string][]byte // digest → body served instead
	basicUser string
	basicPass string
	// token mode: /v2/ needs "Bearer <token>", which /token gives for
	// the basic credentials; the challenge names realm.
	token, realm string
	authz        []string // Authorization headers received
	holds        []*hold
	overrides    []override
}

type hold struct {
	match   func(*http.Request) bool
	release chan struct{}
	held    int
}

type override struct {
	match func(*http.Request) bool
	h     http.HandlerFunc
}

// StartRegistry starts a registry for the test; it stops with the test.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{
		Host:     l.Addr().String(),
		handler:  registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		blobGets: map[string]int{},
		tamper:   map[string][]byte{},
	}
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(l) }()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if a := req.Header.Get("Authorization"); a != "" {
		r.authz = append(r.authz, req.Method+" "+req.URL.Path+" "+a)
	}
	var wait []chan struct{}
	for _, h := range r.holds {
		if h.match(req) {
			h.held++
			wait = append(wait, h.release)
		}
	}
	r.mu.Unlock()
	for _, c := range wait {
		select {
		case <-c:
		case <-req.Context().Done():
			return
		}
	}

	r.mu.Lock()
	user, pass, stall := r.basicUser, r.basicPass, r.stall
	token, realm := r.token, r.realm
	var over http.HandlerFunc
	for _, o := range r.overrides {
		if o.match(req) {
			over = o.h
		}
	}
	var tampered []byte
	digest := ""
	if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
		digest = req.URL.Path[i+len("/blobs/"):]
		r.blobGets[digest]++
		tampered = r.tamper[digest]
	}
	r.mu.Unlock()

	if token != "" {
		if req.URL.Path == "/token" {
			if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q}`, token)
			return
		}
		if req.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="husk-test"`, realm))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	} else if user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="husk-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	if stall != nil && stall(req) {
		// Headers and a first chunk, then nothing until the client leaves.
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 16))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		<-req.Context().Done()
		return
	}
	if over != nil {
		over(w, req)
		return
	}
	if tampered != nil {
		w.Header().Set("Content-Length", fmt.Sprint(len(tampered)))
		w.Header().Set("Docker-Content-Digest", digest)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(tampered)
		return
	}
	r.handler.ServeHTTP(w, req)
}

// BlobGets says how many times the blob was fetched.
func (r *Registry) BlobGets(digest string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[digest]
}

// Stall makes the registry stop sending in the middle of every request
// that match selects (nil: stop stalling).
func (r *Registry) Stall(match func(*http.Request) bool) {
	r.mu.Lock()
	r.stall = match
	r.mu.Unlock()
}

// Tamper makes the registry serve body for the blob with digest.
func (r *Registry) Tamper(digest string, body []byte) {
	r.mu.Lock()
	r.tamper[digest] = body
	r.mu.Unlock()
}

// RequireBasicAuth makes every request need these credentials.
func (r *Registry) RequireBasicAuth(user, pass string) {
	r.mu.Lock()
	r.basicUser, r.basicPass = user, pass
	r.mu.Unlock()
}

// RequireToken makes every /v2/ request need a bearer token, as Docker
// Hub's registry does: the challenge sends clients to realm (empty: this
// registry's /token), where the basic credentials user and pass get it.
func (r *Registry) RequireToken(user, pass, realm string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if realm == "" {
		realm = "http://" + r.Host + "/token"
	}
	r.basicUser, r.basicPass, r.token, r.realm = user, pass, "husk-test-token", realm
}

// Authorizations returns the Authorization headers the registry received,
// each as "METHOD /path header".
func (r *Registry) Authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.authz...)
}

// Hold makes requests that match wait before they are served, until
// release is called (or their client leaves); held says how many came.
func (r *Registry) Hold(match func(*http.Request) bool) (held func() int, release func()) {
	h := &hold{match: match, release: make(chan struct{})}
	r.mu.Lock()
	r.holds = append(r.holds, h)
	r.mu.Unlock()
	var once sync.Once
	return func() int {
			r.mu.Lock()
			defer r.mu.Unlock()
			return h.held
		}, func() {
			once.Do(func() {
				r.mu.Lock()
				for i, x := range r.holds {
					if x == h {
						r.holds = append(r.holds[:i], r.holds[i+1:]...)
						break
					}
				}
				r.mu.Unlock()
				close(h.release)
			})
		}
}

// Override serves requests that match with h, after authentication, in
// place of the registry's answer; a later override wins.
func (r *Registry) Override(match func(*http.Request) bool, h http.HandlerFunc) {
	r.mu.Lock()
	r.overrides = append(r.overrides, override{match, h})
	r.mu.Unlock()
}

// Filler returns a handler that sends n bytes of filler with contentType,
// declaring their length when declare (else chunked), and adds what it
// sent to *sent. It stops when the client leaves. The bytes are made as
// they are sent: n may be far larger than the test's memory.
func Filler(n int64, declare bool, contentType string, sent *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if declare {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("husk "), 64<<10/5)
		for left := n; left > 0; {
			c := chunk[:min(int64(len(chunk)), left)]
			k, err := w.Write(c)
			sent.Add(int64(k))
			left -= int64(k)
			if err != nil {
				return
			}
			if !declare {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
	}
}

// Push stores img in the registry as path:tag (path without registry).
func (r *Registry) Push(t testing.TB, pathTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+pathTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.auth()...); err != nil {
		t.Fatalf("pushing %s: %v", pathTag, err)
	}
}

// PushAll stores every image of imgs, named by its key less prefix (a
// registry's host and slash, or ""), in name order.
func (r *Registry) PushAll(t testing.TB, imgs map[string]v1.Image, prefix string) {
	t.Helper()
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.Push(t, strings.TrimPrefix(n, prefix), imgs[n])
	}
}

// PushIndex stores a multi-platform index as path:tag.
func (r *Registry) PushIndex(t testing.TB, pathTag string, idx v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+pathTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, r.auth()...); err != nil {
		t.Fatalf("pushing %s: %v", pathTag, err)
	}
}

func (r *Registry) auth() []remote.Option {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.basicUser == "" {
		return nil
	}
	if r.token != "" {
		return []remote.Option{remote.WithAuth(&authn.Bearer{Token: r.token})}
	}
	return []remote.Option{remote.WithAuth(&basic{r.basicUser, r.basicPass})}
}

// MirrorConfig writes a hosts.toml directory that serves each of the
// registries named (registry.k8s.io, docker.io, ...) from this registry,
// and returns its path. The registry itself is the server too, so no test
// request ever leaves the machine; as the server, it may receive pull
// credentials over its plain HTTP (the mirror entry, at the same address,
// gets none: it is not the registry).
func (r *Registry) MirrorConfig(t testing.TB, registries ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, reg := range registries {
		d := filepath.Join(dir, reg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("server = \"http://%s\"\nallow_credentials_over_http = true\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r.Host, r.Host)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type basic struct{ user, pass string }

func (b *basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}

// ResetConnection sends what the handler has written so far and resets the
// connection (RST, not FIN: SO_LINGER 0), as a registry or a proxy that
// drops a download does.
func ResetConnection(w http.ResponseWriter) {
	w.(http.Flusher).Flush()
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
