package cri

import (
	"bytes"
	"testing"
)

func TestFitMessage(t *testing.T) {
	b := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	for _, c := range []struct {
		out, err, budget int
		wantOut, wantErr int
	}{
		{10, 10, 100, 10, 10},
		{100, 0, 100, 100, 0},
		{200, 10, 100, 90, 10},
		{10, 200, 100, 10, 90},
		{200, 200, 100, 50, 50},
		{51, 60, 100, 50, 50},
	} {
		o, e := fitMessage(b(c.out), b(c.err), c.budget)
		if len(o) != c.wantOut || len(e) != c.wantErr {
			t.Errorf("fitMessage(%d, %d, %d) = %d, %d; want %d, %d", c.out, c.err, c.budget, len(o), len(e), c.wantOut, c.wantErr)
		}
	}
}
