package images

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	testBinOnce sync.Once
	testBin     []byte
	testBinErr  error
)

// TestBinary returns husktest (conformance/images/husktest), built static
// once per test process.
func TestBinary(t testing.TB) []byte {
	t.Helper()
	testBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "husktest")
		if err != nil {
			testBinErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "husktest")
		cmd := exec.Command("go", "build", "-o", out, "github.com/huskrt/husk/conformance/images/husktest")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			testBinErr = &buildError{err, string(b)}
			return
		}
		testBin, testBinErr = os.ReadFile(out)
	})
	if testBinErr != nil {
		t.Fatal(testBinErr)
	}
	return testBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "building husktest: " + e.err.Error() + ": " + e.out }
