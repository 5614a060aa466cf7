package usage

import "testing"

func TestWorkingSet(t *testing.T) {
	for _, c := range []struct{ usage, inactive, want uint64 }{
		{100, 30, 70},
		{100, 0, 100},
		{100, 100, 0},
		{100, 130, 0}, // read at different instants: counters can cross
		{0, 0, 0},
	} {
		if got := WorkingSet(c.usage, c.inactive); got != c.want {
			t.Errorf("WorkingSet(%d, %d) = %d, want %d", c.usage, c.inactive, got, c.want)
		}
	}
}
