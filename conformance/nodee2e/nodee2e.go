// Package nodee2e is the groundwork for running Kubernetes' node end-to-end
// suite (k8s.io/kubernetes/test/e2e_node, issue 16) against husk: the
// suite's binary is built by scripts/node-e2e-build.sh, this package counts
// its specs and lists the images its NodeConformance specs pull, with how
// each is to be built offline.
package nodee2e

import (
	"github.com/huskrt/husk/conformance/ginkgoreport"
)

// Counts are the numbers of specs of a dry run focused on NodeConformance.
type Counts struct {
	Total       int // every spec the binary holds
	Conformance int // the specs tagged NodeConformance
	// Parallel are the Conformance specs tagged none of Serial, Slow,
	// Flaky and Disruptive: those that can run beside others in a
	// bounded time.
	Parallel int
}

// aside are the tags that keep a spec out of a parallel, bounded run.
var aside = []string{"Serial", "Slow", "Flaky", "Disruptive"}

// Count counts the specs of a ginkgo report.
func Count(specs []ginkgoreport.Spec) Counts {
	var c Counts
	for _, s := range specs {
		c.Total++
		if !s.HasTag("NodeConformance") {
			continue
		}
		c.Conformance++
		parallel := true
		for _, t := range aside {
			if s.HasTag(t) {
				parallel = false
			}
		}
		if parallel {
			c.Parallel++
		}
	}
	return c
}
