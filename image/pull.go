package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	godigest "github.com/opencontainers/go-digest"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/image/hosts"
	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/tracing"
)

// PullOptions configure a Puller.
type PullOptions struct {
	// HostsDir is the hosts.toml directory ([registry] config_path).
	HostsDir string
	// ProgressTimeout fails a pull that waits this long on the network
	// without receiving a byte (time spent unpacking does not count).
	ProgressTimeout time.Duration
	// SmallObjectTimeout bounds the whole response for a manifest, an
	// index, an image config, a token and the registry's API check;
	// zero means 30 seconds.
	SmallObjectTimeout time.Duration
	// MinBytesPerSecond fails a layer that receives fewer than this many
	// bytes a second over a whole ProgressTimeout of waiting on it; zero
	// means any byte is progress.
	MinBytesPerSecond int64
	// MaxConcurrentDownloads bounds the layers one pull fetches at once.
	MaxConcurrentDownloads int
	// Limits caps what one layer may unpack to ([image] max_layer_bytes
	// and max_layer_files); a layer's blob may not be larger either.
	Limits layer.Limits
}

// Puller pulls images into a Store. Concurrent pulls of one reference
// with the same credential share one pull, and concurrent fetches of one
// blob with the same credential, or unpacks of one layer, share one,
// whichever images they belong to. Pulls with different credentials never
// share: one pod must not get an image on another's credential (kubelet's
// KubeletEnsureSecretPulledImages relies on each pull proving its own),
// and a refused credential must not fail a pull that has a good one.
type Puller struct {
	store     *Store
	opts      PullOptions
	transport *http.Transport

	pulls, blobs, unpacks singleflight.Group
}

// NewPuller returns a Puller over store.
func NewPuller(store *Store, opts PullOptions) *Puller {
	if opts.MaxConcurrentDownloads <= 0 {
		opts.MaxConcurrentDownloads = 3
	}
	if opts.ProgressTimeout <= 0 {
		opts.ProgressTimeout = time.Minute
	}
	if opts.SmallObjectTimeout <= 0 {
		opts.SmallObjectTimeout = 30 * time.Second
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConnsPerHost = opts.MaxConcurrentDownloads + 1
	return &Puller{store: store, opts: opts, transport: t}
}

// Pull pulls ref (a tag or digest reference; an image ID only if the
// image is already here) and returns the image's ID.
func (p *Puller) Pull(ctx context.Context, spec string, auth Auth) (_ string, err error) {
	ctx, span := tracing.Step(ctx, "image.pull", attribute.String("image", spec))
	defer func() { tracing.End(span, err) }()
	if id, ok := asID(spec); ok {
		if img, err := p.store.Resolve(id); err == nil {
			return img.ID, nil
		}
		return "", errdefs.NotFound("image %s is not here, and an image ID names no registry to pull it from", spec)
	}
	ref, err := ParseRef(spec)
	if err != nil {
		return "", err
	}
	server, err := auth.server(ref)
	if err != nil {
		return "", err
	}
	key := ref.String()
	if k := auth.key(); k != "" {
		key += " " + k
	}
	// The pull outlives a caller that gives up: its result serves the
	// retry. It is bounded by the progress timeout instead.
	ch := p.pulls.DoChan(key, func() (any, error) {
		id, err := p.pull(context.WithoutCancel(ctx), ref, auth, server)
		if err != nil {
			// What the failed pull fetched and no image holds.
			p.store.Collect()
		}
		return id, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("pulling %s: %w", ref, ctx.Err())
	}
}

// errNoProgress is the cause of a pull cancelled for making no progress.
type errNoProgress struct {
	after       time.Duration
	done, total int64
}

func (e errNoProgress) Error() string {
	return fmt.Sprintf("no progress for %s (%d of %d bytes received)", e.after, e.done, e.total)
}

// progress counts the bytes a pull receives and cancels it when it waits
// on the network for the timeout without one; it logs how far it is at
// V(2).
//
// Only time spent waiting on the network counts (cri-o#8760): while no
// request is in flight the pull is working on what it received, writing
// blobs and unpacking layers, which can take longer than the timeout for
// a large layer of many files without anything being stalled; a layer
// fetched after such an unpack must not be cancelled for it. The clock
// starts when a request goes out with none other in flight, and every
// response byte restarts it.
type progress struct {
	done, total atomic.Int64
	last        atomic.Int64 // unix nanos of the last byte, or of the start of the wait

	mu       sync.Mutex
	inFlight int // requests sent whose responses are not read to the end or closed
	// layers are the layer bodies being read, each with its rate window
	// (nil when there is no minimum rate).
	layers  map[*countingBody]*rateWindow
	minRate int64         // bytes a second a layer must keep
	window  time.Duration // over this much of its waiting time
}

// track starts the rate window of a layer body.
func (p *progress) track(b *countingBody) {
	if p.minRate <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.layers == nil {
		p.layers = map[*countingBody]*rateWindow{}
	}
	b.last.Store(time.Now().UnixNano())
	p.layers[b] = newRateWindow(time.Now(), p.window, int64(float64(p.minRate)*p.window.Seconds()))
}

// slowLayer returns why a layer body in flight is too slow, or nil. A
// body is tracked only while it is read from the network, so time spent
// unpacking never counts against a layer.
func (p *progress) slowLayer(now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b, w := range p.layers {
		got, slow := w.observe(now, b.n.Load())
		// A body that has stopped is the no-progress check's to report;
		// this one is for a body that still trickles.
		stopped := now.Sub(time.Unix(0, b.last.Load())) >= p.window/2
		if slow && !stopped {
			return errSlowLayer{layer: b.layer, host: b.host, got: got, window: p.window, rate: p.minRate}
		}
	}
	return nil
}

func (p *progress) add(n int) {
	p.done.Add(int64(n))
	metrics.ImagePullBytes.Add(float64(n))
	p.last.Store(time.Now().UnixNano())
}

// begin records a request going out: the pull waits on the network.
func (p *progress) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight == 0 {
		p.last.Store(time.Now().UnixNano())
	}
	p.inFlight++
}

// end records a request done with: its response read or closed, or the
// request failed.
func (p *progress) end(b *countingBody) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	delete(p.layers, b)
}

// idle says how long the pull has waited on the network without a byte.
func (p *progress) idle(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, p.last.Load()))
}

func (p *Puller) watch(ctx context.Context, cancel context.CancelCauseFunc, ref Ref, pr *progress) {
	tick := time.NewTicker(min(time.Second, p.opts.ProgressTimeout/4))
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if pr.idle(now) >= p.opts.ProgressTimeout {
				cancel(errNoProgress{p.opts.ProgressTimeout, pr.done.Load(), pr.total.Load()})
				return
			}
			if err := pr.slowLayer(now); err != nil {
				cancel(err)
				return
			}
			if now.Sub(lastLog) >= 5*time.Second {
				klog.V(2).InfoS("Pulling image", "image", ref.String(), "bytesDone", pr.done.Load(), "bytesTotal", pr.total.Load())
				lastLog = now
			}
		}
	}
}

// countingTransport feeds every response body byte to a progress, and
// tells it which requests are in flight.
type countingTransport struct {
	next http.RoundTripper
	pr   *progress
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.pr.begin()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.pr.end(nil)
		return nil, err
	}
	t.pr.add(0) // headers count as progress
	b := &countingBody{ReadCloser: resp.Body, pr: t.pr}
	resp.Body = b
	if lim, ok := blobHop(r); ok && lim.layer && resp.StatusCode == http.StatusOK {
		b.layer, b.host = lim.what, r.URL.Host
		t.pr.track(b)
	}
	return resp, err
}

// countingBody counts what is read from a response body and ends its
// request when the body is read to the end, fails, or is closed: what the
// pull does with the bytes next is not waiting on the network.
type countingBody struct {
	io.ReadCloser
	pr    *progress
	ended atomic.Bool
	n     atomic.Int64
	last  atomic.Int64 // unix nanos of its last byte

	layer, host string // a layer's body: what it is and where from
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.pr.add(n)
		b.n.Add(int64(n))
		b.last.Store(time.Now().UnixNano())
	}
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *countingBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *countingBody) end() {
	if b.ended.CompareAndSwap(false, true) {
		b.pr.end(b)
	}
}

func (p *Puller) pull(ctx context.Context, ref Ref, auth Auth, server string) (id string, err error) {
	metrics.ImagePullsInProgress.Inc()
	defer func() {
		metrics.ImagePullsInProgress.Dec()
		outcome := "success"
		if err != nil {
			outcome = "failure"
		}
		metrics.ImagePulls.WithLabelValues(outcome).Inc()
	}()
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr := &progress{minRate: p.opts.MinBytesPerSecond, window: p.opts.ProgressTimeout}
	go p.watch(ctx, cancel, ref, pr)

	hs, err := hosts.Lookup(p.opts.HostsDir, ref.Domain())
	if err != nil {
		return "", fmt.Errorf("registry configuration for %s: %w", ref.Domain(), err)
	}
	need := hosts.Pull
	if ref.Digest() == "" {
		need |= hosts.Resolve
	}
	var errs []string
	var last error
	for _, h := range hs {
		if !h.Can(need) {
			continue
		}
		authr, withheld := auth.authFor(ref, server, h)
		blobKey := ""
		if authr != authn.Anonymous {
			blobKey = auth.key()
		}
		id, err := p.pullFrom(ctx, h, ref, authr, blobKey, pr)
		if err == nil {
			klog.InfoS("Image pulled", "image", ref.String(), "imageID", id, "from", h.String(), "bytes", pr.done.Load(), "duration", time.Since(start))
			return id, nil
		}
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		last = classify(err, h)
		msg := last.Error()
		if withheld != "" && errors.Is(last, errdefs.ErrUnauthenticated) {
			msg += " (" + withheld + ")"
		}
		errs = append(errs, h.String()+": "+msg)
		// A verified layer over the limits is the same from every host,
		// and so is a full disk.
		if ctx.Err() != nil || errors.Is(err, layer.ErrLimit) || errdefs.NoSpace(err) {
			break
		}
	}
	if last == nil {
		return "", errdefs.FailedPrecondition("no registry host for %s may resolve and pull (see hosts.toml in %s)", ref.Domain(), p.opts.HostsDir)
	}
	return "", &pullError{ref: ref.String(), msgs: errs, last: last}
}

// pullError says what every host answered; its code is the last host's.
type pullError struct {
	ref  string
	msgs []string
	last error
}

func (e *pullError) Error() string {
	return fmt.Sprintf("pulling %s: %s", e.ref, strings.Join(e.msgs, "; "))
}
func (e *pullError) Unwrap() error { return e.last }

// classify wraps a registry error in the kind that says what went wrong:
// unknown manifest or repository, refused credentials, an unreachable
// registry, or a stalled pull.
func classify(err error, h hosts.Host) error {
	if lerr, ok := asLimitError(err); ok {
		return lerr
	}
	var terr *transport.Error
	var np errNoProgress
	var sl errSlowLayer
	var so errSlowObject
	var nerr net.Error
	var clear errCleartext
	var local *fs.PathError
	switch {
	case errdefs.NoSpace(err):
		// This node's disk, not the registry: no host would do better.
		return fmt.Errorf("%w: %v", errdefs.ErrResourceExhausted, err)
	case errors.As(err, &clear):
		return errdefs.FailedPrecondition("%v", err)
	case errors.As(err, &np), errors.As(err, &sl), errors.As(err, &so):
		return fmt.Errorf("%w: %v", errdefs.ErrDeadline, err)
	case errors.As(err, &terr):
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: registry refused the credentials (401): %v", errdefs.ErrUnauthenticated, err)
		case http.StatusForbidden:
			return fmt.Errorf("%w: registry denied access (403): %v", errdefs.ErrPermissionDenied, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: manifest or repository unknown to the registry (404): %v", errdefs.ErrNotFound, err)
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %v", errdefs.ErrNotFound, err)
			case transport.UnauthorizedErrorCode:
				return fmt.Errorf("%w: %v", errdefs.ErrUnauthenticated, err)
			case transport.DeniedErrorCode:
				return fmt.Errorf("%w: %v", errdefs.ErrPermissionDenied, err)
			}
		}
	case errors.Is(err, ErrDigestMismatch), errors.As(err, &local):
		// A file of the store (a *fs.PathError is a net.Error too: it has
		// Timeout) is not the registry's.
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: registry %s closed the connection mid-response: %v", errdefs.ErrUnavailable, h, err)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w: registry %s reset the connection: %v", errdefs.ErrUnavailable, h, err)
	case errors.As(err, &nerr), strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "no such host"):
		return fmt.Errorf("%w: registry %s unreachable: %v", errdefs.ErrUnavailable, h, err)
	}
	return err
}

// platform is the node's, for choosing from a multi-platform index.
func platform() v1.Platform {
	pl := v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	if goruntime.GOARCH == "arm" {
		pl.Variant = "v7"
	}
	return pl
}

func (p *Puller) pullFrom(ctx context.Context, h hosts.Host, ref Ref, authr authn.Authenticator, blobKey string, pr *progress) (string, error) {
	tr, err := h.Transport(p.transport)
	if err != nil {
		return "", err
	}
	// go-containerregistry's own transports (retries, authentication)
	// wrap this one: it sees every request as it goes to the network.
	tr = smallObjectTransport{next: limitTransport{next: resumeTransport{next: tr}}, timeout: p.opts.SmallObjectTimeout}
	if authr != authn.Anonymous {
		tr = credentialGuard{next: tr, host: h}
	}
	var nameOpts []name.Option
	if h.Insecure() {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(h.Host+"/"+ref.Path(), nameOpts...)
	if err != nil {
		return "", errdefs.InvalidArgument("image", "%v", err)
	}
	var target name.Reference = repo.Tag(ref.Tag())
	if d := ref.Digest(); d != "" {
		target = repo.Digest(d)
	}
	// The only blob fetched under this context is the image config.
	mctx := withBlobLimit(ctx, "image config", MaxConfigBytes, "the 4 MiB limit on image configs")
	ropts := []remote.Option{
		remote.WithContext(mctx),
		remote.WithTransport(countingTransport{tr, pr}),
		remote.WithAuth(authr),
		remote.WithPlatform(platform()),
	}
	desc, err := remote.Get(target, ropts...)
	if err != nil {
		return "", err
	}
	repoDigest := DigestString(ref.Name(), desc.Digest.String())
	var indexDigest string
	var indexRaw []byte
	if desc.MediaType.IsIndex() {
		indexDigest, indexRaw = desc.Digest.String(), desc.Manifest
	}
	img, err := desc.Image() // picks the node's platform from an index
	if err != nil {
		return "", fmt.Errorf("choosing the %s/%s image: %w", platform().OS, platform().Architecture, err)
	}
	manifestRaw, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return "", err
	}
	mf, err := img.Manifest()
	if err != nil {
		return "", err
	}
	if err := p.checkSizes(mf); err != nil {
		return "", err
	}
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return "", err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return "", fmt.Errorf("image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return "", fmt.Errorf("image has %d layers but its config lists %d diff IDs", len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}
	rec := &Image{
		ID:       mf.Config.Digest.String(),
		Manifest: manifestDigest.String(),
		Index:    indexDigest,
		User:     cfg.Config.User,
		Size:     mf.Config.Size,
		Pulled:   time.Now(),
	}
	chain := ""
	keys := []string{rec.ID, rec.Manifest, rec.Index}
	for i, l := range mf.Layers {
		diffID := cfg.RootFS.DiffIDs[i].String()
		if chain == "" {
			chain = diffID
		} else {
			// The OCI image spec's ChainID: sha256 of "parent diffID".
			chain = godigest.SHA256.FromString(chain + " " + diffID).String()
		}
		rec.Layers = append(rec.Layers, Layer{Digest: l.Digest.String(), MediaType: string(l.MediaType), Size: l.Size, DiffID: diffID, ChainID: chain})
		rec.Size += l.Size
		pr.total.Add(l.Size)
		keys = append(keys, l.Digest.String(), chain)
	}
	release := p.store.hold(keys...)
	defer release()

	// Small blobs first: they were fetched already, and ImageStatus shows them.
	for d, raw := range map[string][]byte{rec.ID: cfgRaw, rec.Manifest: manifestRaw, rec.Index: indexRaw} {
		if d == "" {
			continue
		}
		if err := p.store.WriteBlob(d, bytes.NewReader(raw)); err != nil {
			return "", err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.opts.MaxConcurrentDownloads)
	for _, l := range rec.Layers {
		g.Go(func() error {
			if p.store.HasLayer(l.ChainID) {
				pr.done.Add(l.Size)
				return nil
			}
			t0 := time.Now()
			if err := p.fetchBlob(gctx, repo, l, blobKey, ropts); err != nil {
				return err
			}
			t1 := time.Now()
			_, err, _ := p.unpacks.Do(l.ChainID, func() (any, error) {
				return nil, p.store.UnpackLayer(l.ChainID, l.Digest, l.DiffID, p.opts.Limits)
			})
			klog.V(3).InfoS("Layer pulled", "image", ref.String(), "layer", l.Digest, "bytes", l.Size,
				"fetch", t1.Sub(t0), "unpack", time.Since(t1))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	faults.Point("PullImage/before-commit")
	if err := p.store.Commit(rec, ref, repoDigest); err != nil {
		return "", err
	}
	faults.Point("PullImage/after-commit")
	return rec.ID, nil
}

// checkSizes refuses a manifest whose config or layers are larger than
// husk reads, before anything is fetched.
func (p *Puller) checkSizes(mf *v1.Manifest) error {
	if mf.Config.Size > MaxConfigBytes {
		return errTooLarge{what: fmt.Sprintf("image config %s of %d bytes", mf.Config.Digest, mf.Config.Size),
			limit: MaxConfigBytes, why: "the 4 MiB limit on image configs"}
	}
	for i, l := range mf.Layers {
		if l.Size < 0 {
			return fmt.Errorf("manifest: layer %d has a negative size", i)
		}
		if lim := p.opts.Limits.Bytes; lim > 0 && l.Size > lim {
			return errTooLarge{what: fmt.Sprintf("layer %s of %d bytes", l.Digest, l.Size),
				limit: lim, why: "[image] max_layer_bytes"}
		}
	}
	return nil
}

// fetchBlob downloads a layer blob into the store, once for all pulls that
// want it at the same time with the same credential (key). The registry
// may send no more than the size the manifest gives.
func (p *Puller) fetchBlob(ctx context.Context, repo name.Repository, l Layer, key string, ropts []remote.Option) error {
	if p.store.HasBlob(l.Digest) {
		return nil
	}
	_, err, _ := p.blobs.Do(l.Digest+" "+key, func() (any, error) {
		if p.store.HasBlob(l.Digest) {
			return nil, nil
		}
		lctx := withLayerLimit(ctx, l.Digest, l.Size)
		opts := append(append([]remote.Option(nil), ropts...), remote.WithContext(lctx))
		rl, err := remote.Layer(repo.Digest(l.Digest), opts...)
		if err != nil {
			return nil, err
		}
		rc, err := rl.Compressed()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return nil, p.store.WriteBlob(l.Digest, rc)
	})
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", l.Digest, err)
	}
	return nil
}
