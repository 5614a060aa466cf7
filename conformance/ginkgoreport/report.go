// Package ginkgoreport reads ginkgo's JSON reports (--ginkgo.json-report),
// the results of the Kubernetes suites husk is tested with: critest and the
// node end-to-end suite (e2e_node.test).
package ginkgoreport

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Spec is one spec (It node) of a ginkgo run.
type Spec struct {
	Group   string   // the outermost container ("[k8s.io] Container")
	Name    string   // the whole text, containers and leaf
	State   string   // passed, failed, skipped, pending, panicked, timedout, interrupted
	Message string   // the failure or skip message
	Labels  []string // ginkgo labels of the spec and its containers, nil when none
}

// HasTag reports whether the spec carries tag, as a ginkgo label ("Serial")
// or in its text ("[Serial]"): the Kubernetes suites give each tag both
// ways, older specs only in the text.
func (s Spec) HasTag(tag string) bool {
	return slices.Contains(s.Labels, tag) || strings.Contains(s.Name, "["+tag+"]")
}

// report is the part of ginkgo's JSON report (types.Report) read.
type report struct {
	SpecReports []struct {
		ContainerHierarchyTexts  []string
		ContainerHierarchyLabels [][]string
		LeafNodeText             string
		LeafNodeType             string
		LeafNodeLabels           []string
		State                    string
		Failure                  struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

// Read reads the specs (It nodes) of a ginkgo JSON report, in its order.
func Read(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []report
	if err := json.Unmarshal(b, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var specs []Spec
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != "It" {
				continue
			}
			texts := append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText)
			msg := s.Failure.Message
			if s.State != "passed" && s.Failure.Location.FileName != "" {
				msg = fmt.Sprintf("%s (%s:%d)", msg, filepath.Base(s.Failure.Location.FileName), s.Failure.Location.LineNumber)
			}
			var labels []string
			for _, l := range append(slices.Concat(s.ContainerHierarchyLabels...), s.LeafNodeLabels...) {
				if !slices.Contains(labels, l) {
					labels = append(labels, l)
				}
			}
			specs = append(specs, Spec{Group: texts[0], Name: strings.Join(texts, " "), State: s.State, Message: msg, Labels: labels})
		}
	}
	return specs, nil
}
