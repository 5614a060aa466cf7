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
// once per test process, or read from $HUSK_TESTBIN when that names one
// built beforehand: the cgroup v2 VM (scripts/cgroupv2-vm.sh) has no Go
// toolchain, and a build there would take minutes.
func TestBinary(t testing.TB) []byte {
	t.Helper()
	testBinOnce.Do(func() {
		if p := os.Getenv("HUSK_TESTBIN"); p != "" {
			testBin, testBinErr = os.ReadFile(p)
			return
		}
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
