package ids

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestFindAndResolve(t *testing.T) {
	objs := map[string]int{"aaa111": 1, "aaa222": 2, "bbb333": 3}
	all := []string{"aaa111", "aaa222", "bbb333"}
	cases := []struct {
		in       string
		want     int
		code     codes.Code
		resolved string
	}{
		{"bbb333", 3, codes.OK, "bbb333"},
		{"aaa1", 1, codes.OK, "aaa111"},
		{"b", 3, codes.OK, "bbb333"},
		{"aaa", 0, codes.InvalidArgument, ""},
		{"zzz", 0, codes.NotFound, ""},
	}
	for _, c := range cases {
		got, err := Find(objs, c.in, "thing", "thing_id")
		if got != c.want || errdefs.Code(err) != c.code {
			t.Errorf("Find(%q) = %d, %v; want %d, %v", c.in, got, err, c.want, c.code)
		}
		if id, ok := Resolve(all, c.in); id != c.resolved || ok != (c.resolved != "") {
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.in, id, ok, c.resolved)
		}
	}
	if a, b := New(), New(); len(a) != 64 || a == b {
		t.Errorf("New: %q %q", a, b)
	}
}

func TestValid(t *testing.T) {
	if id := New(); !Valid(id) {
		t.Errorf("Valid(New()) = false for %q", id)
	}
	for id, want := range map[string]bool{
		strings.Repeat("0123456789abcdef", 4): true,
		"":                                    false,
		strings.Repeat("a", 63):               false,
		strings.Repeat("a", 65):               false,
		strings.Repeat("A", 64):               false, // New makes lowercase only
		strings.Repeat("g", 64):               false,
		"../../x":                             false,
		"../" + strings.Repeat("a", 61):       false,
		strings.Repeat("a", 62) + "/.":        false,
		strings.Repeat("a", 63) + "\x00":      false,
		strings.Repeat("a", 32) + "." + strings.Repeat("a", 31): false,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}
