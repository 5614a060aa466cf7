package names

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestNamesReserveAndRelease(t *testing.T) {
	n := New("pod sandbox")
	r, owner := n.reserve("pod_ns_uid_0", "id1")
	if !owner {
		t.Fatal("first reservation not owned")
	}
	if _, owner := n.reserve("pod_ns_uid_0", "id2"); owner {
		t.Fatal("a reserved name was reserved again")
	}
	if _, owner := n.reserve("pod_ns_uid_1", "id3"); !owner {
		t.Fatal("another attempt is another name")
	}
	n.finish("pod_ns_uid_0", r, nil, false)
	n.Release("pod_ns_uid_0", "other-id")
	if _, owner := n.reserve("pod_ns_uid_0", "id4"); owner {
		t.Fatal("release by a non-holder freed the name")
	}
	n.Release("pod_ns_uid_0", "id1")
	if _, owner := n.reserve("pod_ns_uid_0", "id5"); !owner {
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
			r, _ := n.reserve("p", "id1")
			if c.finishErr != nil {
				n.finish("p", r, *c.finishErr, c.callerGone)
			} else {
				// Finished only once claim waits for it: finishing
				// first would test the finished case again.
				waiting := make(chan struct{}, 1)
				n.onWait = func() { waiting <- struct{}{} }
				go func() {
					<-waiting
					n.finish("p", r, nil, false)
				}()
			}
			id, retry, err := n.claim(ctx, "p", r)
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
	r, _ := n.reserve("p", "id1")
	n.finish("p", r, nil, true)
	if id, _, err := n.claim(context.Background(), "p", r); err != nil || id != "id1" {
		t.Fatalf("first claim = %q, %v", id, err)
	}
	if _, _, err := n.claim(context.Background(), "p", r); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second claim = %v, want AlreadyExists", err)
	}
}

func TestNamesClaimGivesUpWithItsCaller(t *testing.T) {
	n := New("pod sandbox")
	r, _ := n.reserve("p", "id1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := n.claim(ctx, "p", r); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("claim = %v, want DeadlineExceeded", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestCreate: the one call sandbox's Run and container's Create make. A
// retry while the first call works waits for it and gets its ID without
// running its own work; a later request is AlreadyExists naming the
// holder; a failed first call lets the waiting retry create afresh.
func TestCreate(t *testing.T) {
	ctx := context.Background()
	n := New("container")
	waiting := make(chan struct{}, 1)
	n.onWait = func() { waiting <- struct{}{} }
	started, release := make(chan struct{}), make(chan struct{})
	type result struct {
		id  string
		err error
	}
	first := make(chan result, 1)
	go func() {
		id, err := n.Create(ctx, "c", "id1", func() error {
			close(started)
			<-release
			return nil
		})
		first <- result{id, err}
	}()
	<-started
	retry := make(chan result, 1)
	go func() {
		id, err := n.Create(ctx, "c", "id2", func() error {
			t.Error("the retry ran its own work while the first call's works")
			return nil
		})
		retry <- result{id, err}
	}()
	<-waiting
	close(release)
	if r := <-first; r.id != "id1" || r.err != nil {
		t.Fatalf("first = %q, %v", r.id, r.err)
	}
	if r := <-retry; r.id != "id1" || r.err != nil {
		t.Fatalf("retry = %q, %v; want the first call's id1", r.id, r.err)
	}
	_, err := n.Create(ctx, "c", "id3", func() error { t.Error("ran for a held name"); return nil })
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "id1") {
		t.Fatalf("later request = %v, want AlreadyExists naming id1", err)
	}

	// A failed first call: the waiting retry creates afresh.
	started, release = make(chan struct{}), make(chan struct{})
	boom := errors.New("boom")
	go func() {
		id, err := n.Create(ctx, "d", "id4", func() error {
			close(started)
			<-release
			return boom
		})
		first <- result{id, err}
	}()
	<-started
	go func() {
		id, err := n.Create(ctx, "d", "id5", func() error { return nil })
		retry <- result{id, err}
	}()
	<-waiting
	close(release)
	if r := <-first; !errors.Is(r.err, boom) {
		t.Fatalf("failed first = %q, %v", r.id, r.err)
	}
	if r := <-retry; r.id != "id5" || r.err != nil {
		t.Fatalf("retry of a failed call = %q, %v; want its own id5", r.id, r.err)
	}
}
