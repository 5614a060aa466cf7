package faults

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]int
	}{
		{"", map[string]int{}},
		{"A/b", map[string]int{"A/b": 1}},
		{"A/b#3", map[string]int{"A/b": 3}},
		{"A/b#0, C/d#x ,", map[string]int{"A/b": 1, "C/d": 1}},
		{"A/b,C/d#2", map[string]int{"A/b": 1, "C/d": 2}},
	} {
		if got := parse(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
