package ginkgoreport

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRatchet(t *testing.T) {
	specs := []Spec{
		{Name: "a", State: "passed"},
		{Name: "b", State: "failed", Message: "boom"},
		{Name: "c", State: "skipped"},
		{Name: "d", State: "passed"},
	}
	for _, c := range []struct {
		expected    []string
		broken, new []string
	}{
		{[]string{"a", "d"}, nil, nil},
		{[]string{"a"}, nil, []string{"d"}},
		{[]string{"a", "b"}, []string{"failed: b\n    boom"}, []string{"d"}},
		{[]string{"a", "c", "d"}, []string{"skipped: c\n    "}, nil},
		{[]string{"a", "d", "gone"}, []string{"not run: gone"}, nil},
		{nil, nil, []string{"a", "d"}},
	} {
		broken, newly := Ratchet(c.expected, specs)
		if !reflect.DeepEqual(broken, c.broken) || !reflect.DeepEqual(newly, c.new) {
			t.Errorf("Ratchet(%q) = %q, %q; want %q, %q", c.expected, broken, newly, c.broken, c.new)
		}
	}
}

func TestFocused(t *testing.T) {
	expected := []string{"[k8s.io] Container runtime x", "[k8s.io] PodSandbox y", "[k8s.io] Image Manager z"}
	got, err := Focused(expected, `\[k8s\.io\] (Container|PodSandbox) `)
	if err != nil || !reflect.DeepEqual(got, expected[:2]) {
		t.Errorf("Focused = %v, %v", got, err)
	}
	if _, err := Focused(expected, "Streaming"); err == nil {
		t.Error("a focus that matches nothing listed is accepted")
	}
	if _, err := Focused(expected, "("); err == nil {
		t.Error("a bad regexp is accepted")
	}
}

func TestReadExpected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "expected")
	if err := os.WriteFile(p, []byte("# comment\n\n  a b  \nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExpected(p)
	if err != nil || !reflect.DeepEqual(got, []string{"a b", "c"}) {
		t.Errorf("ReadExpected = %q, %v", got, err)
	}
}

func TestOneLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"a\n  b\tc", 10, "a b c"},
		{"abcdef", 3, "abc…"},
		{"", 3, ""},
	} {
		if got := OneLine(c.in, c.max); got != c.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
