package critest

import (
	"reflect"
	"strings"
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
		broken, newly := ratchet(c.expected, specs)
		if !reflect.DeepEqual(broken, c.broken) || !reflect.DeepEqual(newly, c.new) {
			t.Errorf("ratchet(%q) = %q, %q; want %q, %q", c.expected, broken, newly, c.broken, c.new)
		}
	}
}

// The ratchet file must list only real spec names, each once.
func TestExpectedFile(t *testing.T) {
	names, err := readExpected(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, "[k8s.io] ") {
			t.Errorf("%s: %q is not a critest spec name", expectedFile, n)
		}
		if seen[n] {
			t.Errorf("%s lists %q twice", expectedFile, n)
		}
		seen[n] = true
	}
}

func TestFocused(t *testing.T) {
	expected := []string{"[k8s.io] Container runtime x", "[k8s.io] PodSandbox y", "[k8s.io] Image Manager z"}
	got, err := focused(expected, `\[k8s\.io\] (Container|PodSandbox) `)
	if err != nil || !reflect.DeepEqual(got, expected[:2]) {
		t.Errorf("focused = %v, %v", got, err)
	}
	if _, err := focused(expected, "Streaming"); err == nil {
		t.Error("a focus that matches nothing listed is accepted")
	}
	if _, err := focused(expected, "("); err == nil {
		t.Error("a bad regexp is accepted")
	}
}
