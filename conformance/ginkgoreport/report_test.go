package ginkgoreport

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	report := `[{"SpecReports":[
	 {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"BeforeSuite","State":"passed"},
	 {"ContainerHierarchyTexts":["[k8s.io] Image Manager","public image"],"LeafNodeText":"should pull","LeafNodeType":"It","State":"failed",
	  "Failure":{"Message":"not found","Location":{"FileName":"/src/pkg/validate/image.go","LineNumber":42}}},
	 {"ContainerHierarchyTexts":["[k8s.io] Runtime info"],"LeafNodeText":"runtime should return version","LeafNodeType":"It","State":"passed"},
	 {"ContainerHierarchyTexts":["[sig-node] Pods","[Serial]"],"ContainerHierarchyLabels":[["sig-node"],["Serial","sig-node"]],
	  "LeafNodeText":"should run [NodeConformance]","LeafNodeType":"It","LeafNodeLabels":["NodeConformance"],"State":"skipped"}]}]`
	p := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{
		{Group: "[k8s.io] Image Manager", Name: "[k8s.io] Image Manager public image should pull", State: "failed", Message: "not found (image.go:42)"},
		{Group: "[k8s.io] Runtime info", Name: "[k8s.io] Runtime info runtime should return version", State: "passed"},
		{Group: "[sig-node] Pods", Name: "[sig-node] Pods [Serial] should run [NodeConformance]", State: "skipped",
			Labels: []string{"sig-node", "Serial", "NodeConformance"}},
	}
	if !reflect.DeepEqual(specs, want) {
		t.Errorf("Read = %+v\nwant %+v", specs, want)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing report: %v", err)
	}
}

func TestHasTag(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		tag  string
		want bool
	}{
		{Spec{Name: "a [Serial] b"}, "Serial", true},
		{Spec{Name: "a b", Labels: []string{"Serial"}}, "Serial", true},
		{Spec{Name: "a Serial b"}, "Serial", false},
		{Spec{Name: "a [Slow] b", Labels: []string{"NodeConformance"}}, "Serial", false},
		{Spec{Name: "a [NodeConformance]"}, "NodeConformance", true},
	} {
		if got := c.spec.HasTag(c.tag); got != c.want {
			t.Errorf("%+v.HasTag(%q) = %v, want %v", c.spec, c.tag, got, c.want)
		}
	}
}
