// Package undo keeps the steps that reverse what a creating call did, so
// that a failure anywhere leaves nothing behind: every step that creates
// something adds its undo right after it succeeds.
//
// A step can fail too (a CNI DEL refused, a mount busy, a shim that does
// not answer). Then what it should have reversed is still there, and only
// the call's record knows it: the steps that remove the record (AddRecord)
// are skipped, so that recovery or a later Remove finishes the job, as
// containerd keeps a sandbox in SANDBOX_UNKNOWN after a failed cleanup.
package undo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// StepTimeout bounds one step unless Stack.Bound says otherwise. The
// slowest step that works (CNI DEL on a loaded node; killing a shim and
// waiting for its cgroups to empty) takes seconds; a step past this is
// hung (a shim that no longer answers), and waiting longer only keeps
// kubelet's retry, which comes after 4 minutes, waiting too.
const StepTimeout = 30 * time.Second

// Stack is the undo steps of one call, run last first. The zero value is
// ready to use.
type Stack struct {
	// Bound is how long one step may take; zero means StepTimeout.
	Bound time.Duration
	steps []step
}

type step struct {
	run func(context.Context) error
	// record: the step removes what recovery or removal needs to finish
	// a rollback that failed.
	record bool
}

// Add records the step that reverses what was just created.
func (s *Stack) Add(f func(context.Context) error) { s.steps = append(s.steps, step{run: f}) }

// AddRecord records a step that removes the call's record, or what must
// stay with it for a later removal to find (a directory, an image lease):
// it runs only if no step that ran before it failed.
func (s *Stack) AddRecord(f func(context.Context) error) {
	s.steps = append(s.steps, step{run: f, record: true})
}

// Run reverses everything, last first. Each step gets a context of its
// own, bounded by Bound: the call's may be what failed. A step still
// running at its bound counts as failed and is left to finish on its own,
// so that one hung step cannot hang the call. Once a step has failed the
// record steps are skipped. Failures are logged with kv (podSandboxID,
// containerID) and returned joined: nil means everything was reversed and
// the record is gone; the call's own error is still the one its caller
// needs.
func (s *Stack) Run(ctx context.Context, what string, kv ...any) error {
	bound := s.Bound
	if bound <= 0 {
		bound = StepTimeout
	}
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		st := s.steps[i]
		if st.record && len(errs) > 0 {
			continue
		}
		if err := runBounded(ctx, st.run, bound); err != nil {
			klog.ErrorS(err, "Rolling back "+what+": a step failed; the record is kept for a later removal", kv...)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runBounded(ctx context.Context, f func(context.Context) error, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	done := make(chan error, 1) // the step may finish after we stopped waiting
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // finished at its bound after all
			return err
		default:
			return fmt.Errorf("undo step still running after %s", bound)
		}
	}
}
