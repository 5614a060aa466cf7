// Package undo keeps the steps that reverse what a creating call did, so
// that a failure anywhere leaves nothing behind: every step that creates
// something adds its undo right after it succeeds.
package undo

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// Stack is the undo steps of one call, run last first.
type Stack []func(context.Context) error

// Add records the step that reverses what was just created.
func (s *Stack) Add(f func(context.Context) error) { *s = append(*s, f) }

// Run reverses everything, last first, with a context of its own: the
// call's may be what failed. Errors are logged, not returned: the call's
// own error is the one its caller needs.
func (s Stack) Run(ctx context.Context, what string, kv ...any) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i := len(s) - 1; i >= 0; i-- {
		if err := s[i](ctx); err != nil {
			klog.ErrorS(err, "Rolling back "+what, kv...)
		}
	}
}
