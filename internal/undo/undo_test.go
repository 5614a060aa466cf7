package undo

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestRunsLastFirstAndEveryStep(t *testing.T) {
	var s Stack
	var ran []int
	for i := 0; i < 3; i++ {
		s.Add(func(context.Context) error {
			ran = append(ran, i)
			if i == 1 {
				return errors.New("step failed")
			}
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the call's context is gone: the undo still runs
	s.Run(ctx, "test")
	if !slices.Equal(ran, []int{2, 1, 0}) {
		t.Errorf("ran %v, want [2 1 0]", ran)
	}
}
