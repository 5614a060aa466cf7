// Package image pulls OCI images with go-containerregistry into a
// content-addressed store under huskd's root, unpacks each layer once into
// a directory overlayfs can stack, and answers kubelet's image calls.
//
// Files, under <root>/images:
//
//	index.json              images, unpacked layers and container leases (one atomic file)
//	blobs/sha256/<hex>      manifests, configs and compressed layers, verified on write
//	layers/<chain-id hex>/  one unpacked layer, an overlay lowerdir
//	tmp/                    downloads and unpacks in progress; emptied at start
package image

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/huskrt/husk/internal/errdefs"
)

// asID returns the image ID s names, if s is one: "sha256:<64 hex>" or
// the 64 hex digits alone, as go-digest validates a sha256 digest.
func asID(s string) (string, bool) {
	d := digest.Digest(s)
	if !strings.Contains(s, ":") {
		d = digest.NewDigestFromEncoded(digest.SHA256, s)
	}
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return "", false
	}
	return d.String(), true
}

// Ref is an image reference normalised as kubelet and containerd write it:
// "busybox" is docker.io/library/busybox:latest.
type Ref struct {
	named reference.Named
}

// ParseRef normalises s. A reference with neither tag nor digest gets
// :latest.
func ParseRef(s string) (Ref, error) {
	if s == "" {
		return Ref{}, errdefs.InvalidArgument("image", "must not be empty")
	}
	if _, ok := asID(s); ok {
		return Ref{}, errdefs.InvalidArgument("image", "%q is an image ID, not a reference", s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, errdefs.InvalidArgument("image", "%q is not a valid image reference: %v", s, err)
	}
	return Ref{named: reference.TagNameOnly(named)}, nil
}

// String is the full normalised reference: name:tag, name@digest, or
// name:tag@digest.
func (r Ref) String() string { return r.named.String() }

// Name is the repository with its registry: docker.io/library/busybox.
func (r Ref) Name() string { return r.named.Name() }

// Domain is the registry: docker.io, registry.k8s.io, 127.0.0.1:5000.
func (r Ref) Domain() string { return reference.Domain(r.named) }

// Path is the repository path within the registry: library/busybox.
func (r Ref) Path() string { return reference.Path(r.named) }

// Tag is the tag, or "" for a reference by digest alone.
func (r Ref) Tag() string {
	if t, ok := r.named.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// Digest is the digest, or "".
func (r Ref) Digest() string {
	if d, ok := r.named.(reference.Digested); ok {
		return d.Digest().String()
	}
	return ""
}

// TagString is name:tag, the form of a repo tag; "" without a tag.
func (r Ref) TagString() string {
	if t := r.Tag(); t != "" {
		return r.Name() + ":" + t
	}
	return ""
}

// DigestString is name@digest, the form of a repo digest.
func DigestString(name, digest string) string { return name + "@" + digest }

// UserOf splits an image config's USER into the CRI's uid or username:
// "1000" and "1000:50" give uid 1000, "www-data" and "www-data:50" give a
// username; "" gives neither.
func UserOf(user string) (uid *int64, username string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	var n int64
	if _, err := fmt.Sscanf(u, "%d", &n); err == nil && fmt.Sprint(n) == u {
		return &n, ""
	}
	return nil, u
}
