package kubelet

import (
	"math"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	// 10 samples: 4 at most 0.5 s, 8 at most 1 s, 10 at most 2 s.
	b := []bucket{{0.5, 4}, {1, 8}, {2, 10}, {math.Inf(1), 10}}
	for _, c := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		{"in the first bucket, from 0", 0.2, b, 0.25},
		{"on a bound", 0.4, b, 0.5},
		{"interpolated", 0.5, b, 0.625},
		{"last finite bucket", 0.99, b, 1.95},
		{"in +Inf: the highest finite bound", 0.99, []bucket{{1, 5}, {math.Inf(1), 10}}, 1},
		{"empty buckets skipped", 0.5, []bucket{{0.5, 0}, {1, 0}, {2, 4}, {math.Inf(1), 4}}, 1.5},
		{"no samples", 0.5, []bucket{{1, 0}, {math.Inf(1), 0}}, math.NaN()},
		{"no buckets", 0.5, nil, math.NaN()},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := histogramQuantile(c.q, c.buckets)
			same := math.IsNaN(c.want) && math.IsNaN(got) || math.Abs(got-c.want) < 1e-9
			if !same {
				t.Errorf("histogramQuantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
}

// The quantile over the upper samples: what startHistogram takes when
// kubelet observed each pod twice.
func TestHistogramRank(t *testing.T) {
	// 10 pods: 10 first-sync samples under 0.5 s, then 2 under 1 s, 6
	// under 2 s and 2 under 3 s.
	b := []bucket{{0.5, 10}, {1, 12}, {2, 18}, {3, 20}, {math.Inf(1), 20}}
	for _, c := range []struct {
		rank, want float64
	}{
		{10 + 0.5*10, 1.5},   // the p50 of the 10 upper ones
		{10 + 0.99*10, 2.95}, // their p99
		{10, 0.5},
		{0, 0},
	} {
		if got := histogramRank(c.rank, b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("histogramRank(%v) = %v, want %v", c.rank, got, c.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	metrics := `# HELP kubelet_pod_start_duration_seconds [ALPHA] Duration
# TYPE kubelet_pod_start_duration_seconds histogram
kubelet_pod_start_duration_seconds_bucket{le="2"} 7
kubelet_pod_start_duration_seconds_bucket{le="0.5"} 1
kubelet_pod_start_duration_seconds_bucket{le="+Inf"} 9
kubelet_pod_start_duration_seconds_sum 12.5
kubelet_pod_start_duration_seconds_count 9
kubelet_pod_start_sli_duration_seconds_bucket{le="0.5"} 3
`
	got := histogramBuckets(metrics, "kubelet_pod_start_duration_seconds")
	want := []bucket{{0.5, 1}, {2, 7}, {math.Inf(1), 9}}
	if len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: %v, want %v", i, got[i], want[i])
		}
	}
	if b := histogramBuckets(metrics, "kubelet_no_such_seconds"); len(b) != 0 {
		t.Errorf("buckets of a missing histogram: %v", b)
	}
}

func TestCPUDelta(t *testing.T) {
	before := map[int]procTime{1: {start: 10, ticks: 100}, 2: {start: 20, ticks: 50}, 3: {start: 30, ticks: 5}}
	after := map[int]procTime{1: {start: 10, ticks: 160}, 2: {start: 99, ticks: 1}, 4: {start: 40, ticks: 7}}
	// 1 used 60; 2 is another process now and 3 is gone; 4 was not
	// measured at the start.
	if ticks, gone := cpuDelta(before, after); ticks != 60 || gone != 2 {
		t.Errorf("cpuDelta = %v, %d gone; want 60, 2", ticks, gone)
	}
}
