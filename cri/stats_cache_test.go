package cri

import (
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStatsCache(t *testing.T) {
	clock := time.Unix(1000, 0)
	reads := map[string]int{}
	gone := map[string]bool{}
	c := newStatsCache(10*time.Second, func(id string, now time.Time) (*runtime.ContainerStats, bool) {
		if gone[id] {
			return nil, false
		}
		reads[id]++
		return &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: id}, Cpu: &runtime.CpuUsage{Timestamp: now.UnixNano()}}, true
	})
	c.startRefresher = func() {} // refreshOnce is driven by hand
	c.now = func() time.Time { return clock }
	advance := func(d time.Duration) { clock = clock.Add(d) }
	ts := func(st *runtime.ContainerStats) int64 { return st.GetCpu().GetTimestamp() }

	st, ok := c.get("a")
	if !ok || reads["a"] != 1 || ts(st) != clock.UnixNano() {
		t.Fatalf("first get: %v %v, %d reads", st, ok, reads["a"])
	}
	advance(9 * time.Second)
	if st, _ := c.get("a"); reads["a"] != 1 || ts(st) != time.Unix(1000, 0).UnixNano() {
		t.Errorf("within the period: %d reads, timestamp %d; want the kept reading", reads["a"], ts(st))
	}
	advance(time.Second)
	if st, _ := c.get("a"); reads["a"] != 2 || ts(st) != clock.UnixNano() {
		t.Errorf("at the period: %d reads; want a fresh reading", reads["a"])
	}

	// The refresher rereads what was asked for within the idle window.
	c.get("b")
	advance(5 * time.Second)
	if !c.refreshOnce() || reads["a"] != 3 || reads["b"] != 2 {
		t.Errorf("refresh: reads %v", reads)
	}
	if st, _ := c.get("b"); reads["b"] != 2 || ts(st) != clock.UnixNano() {
		t.Errorf("after a refresh: %d reads; want the refreshed reading served", reads["b"])
	}

	// A container that is gone is forgotten, by get and by refresh.
	gone["a"] = true
	advance(11 * time.Second)
	if _, ok := c.get("a"); ok {
		t.Error("a container that is gone was served")
	}
	gone["b"] = true
	c.refreshOnce()
	if len(c.byID) != 0 {
		t.Errorf("kept after their containers went: %v", c.byID)
	}

	// What nobody asked about for the idle window is dropped, and the
	// refresher stops when nothing is left.
	c.get("c")
	advance(2 * time.Minute)
	if c.refreshOnce() || len(c.byID) != 0 {
		t.Errorf("an idle entry was kept: %v", c.byID)
	}
}
