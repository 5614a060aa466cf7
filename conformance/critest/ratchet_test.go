package critest

import (
	"os"
	"path/filepath"
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

func TestReadReport(t *testing.T) {
	report := `[{"SpecReports":[
	 {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"BeforeSuite","State":"passed"},
	 {"ContainerHierarchyTexts":["[k8s.io] Image Manager","public image"],"LeafNodeText":"should pull","LeafNodeType":"It","State":"failed",
	  "Failure":{"Message":"not found","Location":{"FileName":"/src/pkg/validate/image.go","LineNumber":42}}},
	 {"ContainerHierarchyTexts":["[k8s.io] Runtime info"],"LeafNodeText":"runtime should return version","LeafNodeType":"It","State":"passed"}]}]`
	p := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := ReadReport(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{
		{Group: "[k8s.io] Image Manager", Name: "[k8s.io] Image Manager public image should pull", State: "failed", Message: "not found (image.go:42)"},
		{Group: "[k8s.io] Runtime info", Name: "[k8s.io] Runtime info runtime should return version", State: "passed"},
	}
	if !reflect.DeepEqual(specs, want) {
		t.Errorf("ReadReport = %+v\nwant %+v", specs, want)
	}
	if _, err := ReadReport(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing report: %v", err)
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
