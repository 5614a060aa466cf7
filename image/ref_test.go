package image

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestParseRef(t *testing.T) {
	d := "sha256:" + "ab"[0:2] + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
	cases := []struct {
		in                       string
		full, name, domain, path string
		tag, digest, tagStr      string
	}{
		{in: "busybox", full: "docker.io/library/busybox:latest", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "latest", tagStr: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", full: "docker.io/library/busybox:1.36", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "1.36", tagStr: "docker.io/library/busybox:1.36"},
		{in: "user/app", full: "docker.io/user/app:latest", name: "docker.io/user/app", domain: "docker.io", path: "user/app", tag: "latest", tagStr: "docker.io/user/app:latest"},
		{in: "registry.k8s.io/e2e-test-images/busybox:1.29-2", full: "registry.k8s.io/e2e-test-images/busybox:1.29-2", name: "registry.k8s.io/e2e-test-images/busybox", domain: "registry.k8s.io", path: "e2e-test-images/busybox", tag: "1.29-2", tagStr: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		{in: "127.0.0.1:5000/x/y@" + d, full: "127.0.0.1:5000/x/y@" + d, name: "127.0.0.1:5000/x/y", domain: "127.0.0.1:5000", path: "x/y", digest: d},
		{in: "localhost/app:v1", full: "localhost/app:v1", name: "localhost/app", domain: "localhost", path: "app", tag: "v1", tagStr: "localhost/app:v1"},
	}
	for _, c := range cases {
		r, err := ParseRef(c.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", c.in, err)
			continue
		}
		got := [...]string{r.String(), r.Name(), r.Domain(), r.Path(), r.Tag(), r.Digest(), r.TagString()}
		want := [...]string{c.full, c.name, c.domain, c.path, c.tag, c.digest, c.tagStr}
		if got != want {
			t.Errorf("ParseRef(%q) = %q, want %q", c.in, got, want)
		}
	}
	for _, bad := range []string{"", "docker.io/UPPER/case", "a b", "sha256:" + d[7:], d[7:], "x:y:z"} {
		if _, err := ParseRef(bad); errdefs.Code(err) != codes.InvalidArgument {
			t.Errorf("ParseRef(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestUserOf(t *testing.T) {
	cases := []struct {
		user     string
		uid      int64
		hasUID   bool
		username string
	}{
		{"", 0, false, ""},
		{"0", 0, true, ""},
		{"1002", 1002, true, ""},
		{"1003:1004", 1003, true, ""},
		{"www-data", 0, false, "www-data"},
		{"www-data:1004", 0, false, "www-data"},
		{"007", 0, false, "007"},
	}
	for _, c := range cases {
		uid, name := UserOf(c.user)
		if (uid != nil) != c.hasUID || (uid != nil && *uid != c.uid) || name != c.username {
			t.Errorf("UserOf(%q) = %v, %q", c.user, uid, name)
		}
	}
}

// Image IDs and blob digests, as go-digest validates sha256 digests: the
// store holds sha256 only, in canonical lower-case hex.
func TestDigests(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		in     string
		id     string // asID; "" for not an ID
		stored bool   // validDigest
	}{
		{"sha256:" + hex, "sha256:" + hex, true},
		{hex, "sha256:" + hex, false},
		{"sha256:" + strings.ToUpper(hex), "", false},
		{strings.ToUpper(hex), "", false},
		{"sha256:" + hex[1:], "", false},
		{"sha256:" + hex + "0", "", false},
		{"sha256:" + hex[:63] + "g", "", false},
		{"sha512:" + hex + hex, "", false},
		{"md5:" + hex[:32], "", false},
		{"sha256:", "", false},
		{":" + hex, "", false},
		{"", "", false},
		{"sha256:../../" + hex[6:], "", false},
		{" sha256:" + hex, "", false},
	} {
		if id, ok := asID(c.in); id != c.id || ok != (c.id != "") {
			t.Errorf("asID(%q) = %q, %v; want %q", c.in, id, ok, c.id)
		}
		if got := validDigest(c.in); got != c.stored {
			t.Errorf("validDigest(%q) = %v, want %v", c.in, got, c.stored)
		}
	}
}
