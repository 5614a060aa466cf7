package names

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestNamesReserveAndRelease(t *testing.T) {
	n := New("pod sandbox")
	r, owner := n.Reserve("pod_ns_uid_0", "id1")
	if !owner {
		t.Fatal("first reservation not owned")
	}
	if _, owner := n.Reserve("pod_ns_uid_0", "id2"); owner {
		t.Fatal("a reserved name was reserved again")
	}
	if _, owner := n.Reserve("pod_ns_uid_1", "id3"); !owner {
		t.Fatal("another attempt is another name")
	}
	n.Finish("pod_ns_uid_0", r, nil, false)
	n.Release("pod_ns_uid_0", "other-id")
	if _, owner := n.Reserve("pod_ns_uid_0", "id4"); owner {
		t.Fatal("release by a non-holder freed the name")
	}
	n.Release("pod_ns_uid_0", "id1")
	if _, owner := n.Reserve("pod_ns_uid_0", "id5"); !owner {
		t.Fatal("release by the holder did not free the name")
	}
}

func TestNamesClaim(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// finish before the duplicate arrives (nil: still in progress)
		finishErr  *error
		callerGone bool
		wantID     bool
		wantRetry  bool
		wantCode   error
	}{
		{name: "finished, seen by its caller", finishErr: ptr[error](nil), wantCode: errdefs.ErrAlreadyExists},
		{name: "finished after its caller gave up", finishErr: ptr[error](nil), callerGone: true, wantID: true},
		{name: "failed", finishErr: ptr[error](errors.New("boom")), wantRetry: true},
		{name: "in progress, then succeeds", wantID: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := New("pod sandbox")
			r, _ := n.Reserve("p", "id1")
			var id string
			var retry bool
			var err error
			if c.finishErr != nil {
				n.Finish("p", r, *c.finishErr, c.callerGone)
				id, retry, err = n.Claim(ctx, "p", r)
			} else {
				// Finished only once the claim waits for it: a guess at
				// timing would let a slow machine finish it first.
				claimed := make(chan struct{})
				go func() {
					defer close(claimed)
					id, retry, err = n.Claim(ctx, "p", r)
				}()
				waitBlockedInClaim(t)
				n.Finish("p", r, nil, false)
				<-claimed
			}
			if c.wantCode != nil {
				if !errors.Is(err, c.wantCode) {
					t.Fatalf("err = %v, want %v", err, c.wantCode)
				}
				return
			}
			if err != nil || retry != c.wantRetry || (id == "id1") != c.wantID {
				t.Fatalf("claim = %q, %v, %v", id, retry, err)
			}
		})
	}
}

func TestNamesUnclaimedIsTakenOnce(t *testing.T) {
	n := New("pod sandbox")
	r, _ := n.Reserve("p", "id1")
	n.Finish("p", r, nil, true)
	if id, _, err := n.Claim(context.Background(), "p", r); err != nil || id != "id1" {
		t.Fatalf("first claim = %q, %v", id, err)
	}
	if _, _, err := n.Claim(context.Background(), "p", r); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second claim = %v, want AlreadyExists", err)
	}
}

func TestNamesClaimGivesUpWithItsCaller(t *testing.T) {
	n := New("pod sandbox")
	r, _ := n.Reserve("p", "id1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := n.Claim(ctx, "p", r); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("claim = %v, want DeadlineExceeded", err)
	}
}

func ptr[T any](v T) *T { return &v }

// waitBlockedInClaim waits until a goroutine is parked in Claim, which
// happens only in its wait for a reservation still in progress (its first
// select has a default).
func waitBlockedInClaim(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		all := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(all, "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "(*Registrar).Claim(") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine waits in Claim after 30s:\n%s", all)
		}
	}
}
