package cri

import (
	"errors"
	"testing"
	"time"
)

func TestLayerUsage(t *testing.T) {
	clock := time.Unix(1000, 0)
	var walks int
	took := time.Duration(0) // what the next walk costs on the clock
	var walkErr error
	l := newLayerUsage(func(dir string) (uint64, uint64, error) {
		walks++
		clock = clock.Add(took)
		return uint64(walks), 1, walkErr
	})
	l.now = func() time.Time { return clock }
	get := func() layerReading {
		t.Helper()
		r, err := l.get("a", "/upper/a")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// A cheap walk is reused for a second, and says when it was made.
	took = 20 * time.Microsecond
	start := clock
	get()
	clock = clock.Add(999 * time.Millisecond)
	if r := get(); walks != 1 || !r.at.Equal(start) {
		t.Errorf("within a second: %d walks, %+v; want the walk of %v", walks, r, start)
	}
	clock = clock.Add(time.Millisecond)
	if r := get(); walks != 2 || r.bytes != 2 || !r.at.Equal(clock.Add(-took)) {
		t.Errorf("after a second: %d walks, %+v; want a new one", walks, r)
	}

	// A costly one is reused for 50 times its cost.
	took = 100 * time.Millisecond
	clock = clock.Add(time.Second)
	first := get()
	start = clock.Add(-took)
	clock = clock.Add(4 * time.Second)
	if r := get(); walks != 3 || !r.at.Equal(start) {
		t.Errorf("within 50 × its cost: %d walks, %+v; want the walk of %v", walks, r, start)
	}
	clock = clock.Add(time.Second + took)
	if r := get(); walks != 4 || r.bytes == first.bytes {
		t.Errorf("after 50 × its cost: %d walks; want a new one", walks)
	}

	// Never reused for longer than layerMaxAge, however costly.
	took = time.Second
	clock = clock.Add(time.Minute)
	get()
	clock = clock.Add(layerMaxAge)
	if get(); walks != 6 {
		t.Errorf("%d walks; a walk older than %v was reused", walks, layerMaxAge)
	}

	// A failed walk is an error and keeps nothing.
	walkErr = errors.New("gone")
	clock = clock.Add(time.Hour)
	if _, err := l.get("a", "/upper/a"); err == nil || len(l.byID) != 0 {
		t.Errorf("failed walk: %v, kept %v", err, l.byID)
	}
	walkErr = nil

	// forget drops what is not kept.
	get()
	l.forget(map[string]bool{"b": true})
	if len(l.byID) != 0 {
		t.Errorf("kept after forget: %v", l.byID)
	}
}
