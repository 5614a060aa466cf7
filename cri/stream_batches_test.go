package cri

import (
	"errors"
	"testing"
)

// TestSendBatches: the Stream* calls send each item once, in order, in
// batches of 1 to streamBatch items, nothing for no item, and stop at the
// first error of the stream.
func TestSendBatches(t *testing.T) {
	for _, tc := range []struct {
		items int
		want  []int // batch sizes
	}{
		{0, nil},
		{1, []int{1}},
		{streamBatch, []int{streamBatch}},
		{streamBatch + 1, []int{streamBatch, 1}},
		{2*streamBatch + 7, []int{streamBatch, streamBatch, 7}},
	} {
		items := make([]int, tc.items)
		for i := range items {
			items[i] = i
		}
		var sizes []int
		next := 0
		err := sendBatches(items, func(b []int) error {
			sizes = append(sizes, len(b))
			for _, v := range b {
				if v != next {
					t.Errorf("%d items: got item %d, want %d", tc.items, v, next)
				}
				next++
			}
			return nil
		}, func(b []int) []int { return b })
		if err != nil || len(sizes) != len(tc.want) || next != tc.items {
			t.Fatalf("%d items: batches %v, %d items, err %v; want %v", tc.items, sizes, next, err, tc.want)
		}
		for i := range sizes {
			if sizes[i] != tc.want[i] {
				t.Errorf("%d items: batches %v, want %v", tc.items, sizes, tc.want)
			}
		}
	}

	boom := errors.New("boom")
	calls := 0
	err := sendBatches(make([]int, 3*streamBatch), func([]int) error { calls++; return boom }, func(b []int) []int { return b })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("send failing: err %v after %d sends, want boom after 1", err, calls)
	}
}
