package critest

import (
	"strings"
	"testing"

	"github.com/huskrt/husk/conformance/ginkgoreport"
)

// The ratchet file must list only real spec names, each once.
func TestExpectedFile(t *testing.T) {
	names, err := ginkgoreport.ReadExpected(expectedFile)
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
