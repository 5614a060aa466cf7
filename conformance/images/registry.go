package images

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	user, pass, stall := r.basicUser, r.basicPass, r.stall
	var tampered []byte
	digest := ""
	if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
		digest = req.URL.Path[i+len("/blobs/"):]
		r.blobGets[digest]++
		tampered = r.tamper[digest]
	}
	r.mu.Unlock()

	if user != "" {
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
	return []remote.Option{remote.WithAuth(&basic{r.basicUser, r.basicPass})}
}

// MirrorConfig writes a hosts.toml directory that serves each of the
// registries named (registry.k8s.io, docker.io, ...) from this registry,
// and returns its path. The registry itself is the server too, so no test
// request ever leaves the machine.
func (r *Registry) MirrorConfig(t testing.TB, registries ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, reg := range registries {
		d := filepath.Join(dir, reg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r.Host, r.Host)
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
