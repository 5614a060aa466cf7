package sandbox

import (
	"context"
	"fmt"
	"sync"

	"github.com/huskrt/husk/internal/errdefs"
)

// names makes a pod's name (<name>_<namespace>_<uid>_<attempt>) unique
// among sandboxes, and makes kubelet's retry of a RunPodSandbox safe.
//
// kubelet gives RunPodSandbox 4 minutes, then calls it again with the same
// metadata. If the first call is still working, failing the retry with
// "name is reserved" would fail it forever (containerd#12438, cri-o#7010);
// instead the retry waits for the first call and gets its sandbox. If the
// first call finished after its caller had gone, nobody learned the ID; the
// next identical request takes that sandbox instead of being refused.
type names struct {
	mu     sync.Mutex
	byName map[string]*reservation
}

type reservation struct {
	id   string
	done chan struct{} // closed when the creating call has finished

	// Set before done is closed.
	err error
	// unclaimed: the creating call finished after its caller gave up, so
	// the sandbox's ID was never returned to anyone.
	unclaimed bool
}

func newNames() *names { return &names{byName: map[string]*reservation{}} }

// reserve reserves name for id. If the name is free it returns a new
// reservation that the caller owns and must finish. If not, it returns the
// holder's reservation and owner false.
func (n *names) reserve(name, id string) (r *reservation, owner bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.byName[name]; r != nil {
		return r, false
	}
	r = &reservation{id: id, done: make(chan struct{})}
	n.byName[name] = r
	return r, true
}

// restore records a sandbox that already exists (recovered after a restart).
func (n *names) restore(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := &reservation{id: id, done: make(chan struct{})}
	close(r.done)
	n.byName[name] = r
}

// finish ends the owner's creating call. On failure the name is released
// so that a retry can create the sandbox afresh. callerGone says whether
// the owner's caller had stopped waiting.
func (n *names) finish(name string, r *reservation, err error, callerGone bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r.err = err
	r.unclaimed = err == nil && callerGone
	if err != nil && n.byName[name] == r {
		delete(n.byName, name)
	}
	close(r.done)
}

// release frees name if id holds it.
func (n *names) release(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.byName[name]; r != nil && r.id == id {
		delete(n.byName, name)
	}
}

// claim decides what a request that found name reserved by r gets: the
// same sandbox if r was still being created when it arrived (a retry) or
// if nobody has claimed r's result; otherwise AlreadyExists.
func (n *names) claim(ctx context.Context, name string, r *reservation) (id string, retry bool, err error) {
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
		return "", false, errdefs.AlreadyExists("pod sandbox name %q is already used by sandbox %s", name, r.id)
	default:
	}
	// Still being created: this is kubelet's retry. Wait for the first call.
	select {
	case <-r.done:
	case <-ctx.Done():
		return "", false, fmt.Errorf("waiting for the earlier RunPodSandbox of %q (sandbox %s): %w", name, r.id, ctx.Err())
	}
	if r.err != nil {
		return "", true, nil
	}
	n.mu.Lock()
	r.unclaimed = false
	n.mu.Unlock()
	return r.id, false, nil
}
