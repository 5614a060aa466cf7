package undo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	block := func(ctx context.Context) error { select {} } // ignores its context, as a hung shim call can
	for _, tc := range []struct {
		name string
		// steps in the order they were added: "ok", "fail", "block",
		// "ctx" (returns when its context ends), "record" (an AddRecord
		// step that succeeds)
		steps   []string
		wantRan []int
		wantErr string // a regexp
	}{
		{"all succeed, last first", []string{"record", "ok", "ok"}, []int{2, 1, 0}, ""},
		{"a failure skips the record step", []string{"record", "ok", "fail", "ok"}, []int{3, 2, 1}, "step 2 failed"},
		{"a failure before the record step only", []string{"ok", "fail", "record"}, []int{2, 1, 0}, "step 1 failed"},
		{"every failure is returned", []string{"record", "fail", "fail"}, []int{2, 1}, "step 1 failed"},
		{"a step hung past its bound fails and keeps the record", []string{"record", "record", "ok", "block", "ok"}, []int{4, 3, 2}, "still running after"},
		{"a step bounded by its context fails and keeps the record", []string{"record", "ctx"}, []int{1}, "deadline exceeded|still running after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Stack{Bound: 100 * time.Millisecond}
			var mu sync.Mutex // a hung step runs on after Run stopped waiting for it
			var ran []int
			for i, kind := range tc.steps {
				f := func(ctx context.Context) error {
					mu.Lock()
					ran = append(ran, i)
					mu.Unlock()
					switch kind {
					case "fail":
						return fmt.Errorf("step %d failed", i)
					case "block":
						return block(ctx)
					case "ctx":
						<-ctx.Done()
						return ctx.Err()
					}
					return nil
				}
				if kind == "record" {
					s.AddRecord(f)
				} else {
					s.Add(f)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the call's context is gone: the undo still runs
			start := time.Now()
			err := s.Run(ctx, "test")
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("Run took %s with a bound of 100ms per step", d)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(ran, tc.wantRan) {
				t.Errorf("ran %v, want %v", ran, tc.wantRan)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Run: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !regexp.MustCompile(tc.wantErr).MatchString(err.Error())):
				t.Errorf("Run: %v, want an error matching %q", err, tc.wantErr)
			}
		})
	}
}

func TestEveryFailureIsReturned(t *testing.T) {
	var s Stack
	a, b := errors.New("a"), errors.New("b")
	s.Add(func(context.Context) error { return a })
	s.Add(func(context.Context) error { return b })
	if err := s.Run(context.Background(), "test"); !errors.Is(err, a) || !errors.Is(err, b) {
		t.Errorf("Run: %v, want both failures", err)
	}
}
