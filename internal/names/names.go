// Package names reserves the unique names of pod sandboxes and containers
// (kubelet derives them from the pod's and container's metadata), and
// makes kubelet's retry of a creating call that outlived its deadline safe.
package names

import (
	"context"
	"fmt"
	"sync"

	"github.com/huskrt/husk/internal/errdefs"
)

// Registrar makes names unique, and makes kubelet's retry of a creating
// call safe.
//
// kubelet gives RunPodSandbox 4 minutes (CreateContainer 2), then calls it
// again with the same metadata. If the first call is still working,
// failing the retry with "name is reserved" would fail it forever
// (containerd#12438, cri-o#7010); instead the retry waits for the first
// call and gets its result. If the first call finished after its caller
// had gone, nobody learned the ID; the next identical request takes it
// instead of being refused.
type Registrar struct {
	kind   string // "pod sandbox", "container": for messages
	mu     sync.Mutex
	byName map[string]*reservation

	// onWait, when set (tests), is called as a request starts waiting
	// for the holder's call.
	onWait func()
}

// reservation is one name held by one ID.
type reservation struct {
	id   string
	done chan struct{} // closed when the creating call has finished

	// Set before done is closed.
	err error
	// unclaimed: the creating call finished after its caller gave up, so
	// the sandbox's ID was never returned to anyone.
	unclaimed bool
}

// New returns a registrar for names of objects of kind ("pod sandbox").
func New(kind string) *Registrar {
	return &Registrar{kind: kind, byName: map[string]*reservation{}}
}

// Create runs create, the creating call of the object id named name, with
// the name reserved for it, and returns id once create succeeded. If the
// name is held already, create does not run: a request that arrives while
// the holder's call still works is kubelet's retry, and waits for that
// call (or its own ctx) and gets its result; a request for a name whose
// holder's call finished gets that object if its caller had gone before
// the result (once), else AlreadyExists naming the holder. A failed
// create releases the name, so that a retry, or a request waiting for it,
// creates afresh. ctx is the caller's: create should outlive it (kubelet's
// retry comes for its result), so it takes its own.
func (n *Registrar) Create(ctx context.Context, name, id string, create func() error) (string, error) {
	for {
		r, owner := n.reserve(name, id)
		if owner {
			err := create()
			n.finish(name, r, err, ctx.Err() != nil)
			if err != nil {
				return "", err
			}
			return id, nil
		}
		got, retry, err := n.claim(ctx, name, r)
		if err != nil {
			return "", err
		}
		if !retry {
			return got, nil
		}
	}
}

// reserve reserves name for id. If the name is free it returns a new
// reservation that the caller owns and must finish. If not, it returns the
// holder's reservation and owner false.
func (n *Registrar) reserve(name, id string) (r *reservation, owner bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.byName[name]; r != nil {
		return r, false
	}
	r = &reservation{id: id, done: make(chan struct{})}
	n.byName[name] = r
	return r, true
}

// Restore records an object that already exists (recovered after a restart).
func (n *Registrar) Restore(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := &reservation{id: id, done: make(chan struct{})}
	close(r.done)
	n.byName[name] = r
}

// finish ends the owner's creating call. On failure the name is released
// so that a retry can create the sandbox afresh. callerGone says whether
// the owner's caller had stopped waiting.
func (n *Registrar) finish(name string, r *reservation, err error, callerGone bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r.err = err
	r.unclaimed = err == nil && callerGone
	if err != nil && n.byName[name] == r {
		delete(n.byName, name)
	}
	close(r.done)
}

// Release frees name if id holds it.
func (n *Registrar) Release(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.byName[name]; r != nil && r.id == id {
		delete(n.byName, name)
	}
}

// claim decides what a request that found name reserved by r gets: the
// same sandbox if r was still being created when it arrived (a retry) or
// if nobody has claimed r's result; otherwise AlreadyExists.
func (n *Registrar) claim(ctx context.Context, name string, r *reservation) (id string, retry bool, err error) {
	select {
	case <-r.done:
		n.mu.Lock()
		defer n.mu.Unlock()
		if r.err == nil && r.unclaimed {
			r.unclaimed = false
			return r.id, false, nil
		}
		if r.err != nil {
			// Released already: the caller may reserve again.
			return "", true, nil
		}
		return "", false, errdefs.AlreadyExists("%s name %q is already used by %s %s", n.kind, name, n.kind, r.id)
	default:
	}
	// Still being created: this is kubelet's retry. Wait for the first call.
	if n.onWait != nil {
		n.onWait()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return "", false, fmt.Errorf("waiting for the earlier call that creates %s %q (%s): %w", n.kind, name, r.id, ctx.Err())
	}
	if r.err != nil {
		return "", true, nil
	}
	n.mu.Lock()
	r.unclaimed = false
	n.mu.Unlock()
	return r.id, false, nil
}
