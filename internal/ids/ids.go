// Package ids makes the IDs of pods and containers and finds objects by
// ID or by a unique prefix of one, as crictl users type them.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/huskrt/husk/internal/errdefs"
)

// New returns a fresh ID: 64 hex digits, as containerd's and Docker's.
func New() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Len is the length of every ID New makes.
const Len = 64

// Valid reports whether id is one New could have made: 64 lowercase hex
// digits. IDs read back from disk (records, a shim's snapshot) go through
// it before they name a directory to remove or a cgroup to kill, so that a
// damaged or planted file cannot point those outside husk's own.
func Valid(id string) bool {
	if len(id) != Len {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Find returns the object with ID idOrPrefix, or the one whose ID starts
// with it. kind names the objects ("pod sandbox") and field the request
// field for messages. An ambiguous prefix is InvalidArgument; none
// matching is NotFound.
func Find[T any](objs map[string]T, idOrPrefix, kind, field string) (T, error) {
	if o, ok := objs[idOrPrefix]; ok {
		return o, nil
	}
	var found T
	n := 0
	for id, o := range objs {
		if strings.HasPrefix(id, idOrPrefix) {
			found = o
			n++
		}
	}
	switch n {
	case 1:
		return found, nil
	case 0:
		return found, errdefs.NotFound("%s %q not found", kind, idOrPrefix)
	}
	var zero T
	return zero, errdefs.InvalidArgument(field, "%q matches more than one %s", idOrPrefix, kind)
}

// Resolve turns an ID or ID prefix into the one ID of ids it names, for
// list filters: an unknown or ambiguous prefix matches nothing, which is
// not an error for a filter.
func Resolve(ids []string, idOrPrefix string) (string, bool) {
	found := ""
	for _, id := range ids {
		if id == idOrPrefix {
			return id, true
		}
		if strings.HasPrefix(id, idOrPrefix) {
			if found != "" {
				return "", false
			}
			found = id
		}
	}
	return found, found != ""
}
