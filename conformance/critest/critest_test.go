package critest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/conformance/ginkgoreport"
	"github.com/huskrt/husk/conformance/huskdtest"
)

// expectedFile lists the specs that pass; the list only grows.
// HUSK_CRITEST_EXPECTED names it where the source tree is not (the cgroup
// v2 VM runs a compiled test).
var expectedFile = func() string {
	if f := os.Getenv("HUSK_CRITEST_EXPECTED"); f != "" {
		return f
	}
	return "../critest-expected"
}()

// TestCritest runs critest against huskd and fails when a spec that the
// ratchet lists does not pass. `make conformance` runs it with -v, which
// prints the counts and every spec that did not pass.
func TestCritest(t *testing.T) {
	bin := os.Getenv("HUSK_CRITEST")
	if bin == "" {
		t.Skip("HUSK_CRITEST is not set: run through `make conformance` (or `make test`), which builds critest")
	}
	expected, err := ginkgoreport.ReadExpected(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	// HUSK_CRITEST_FOCUS runs only the specs it matches (ginkgo's focus, a
	// regexp on the full spec text), and the ratchet holds only for them:
	// the cgroup v2 VM, 15-30x slower than the host, runs a few groups.
	var args []string
	if f := os.Getenv("HUSK_CRITEST_FOCUS"); f != "" {
		if expected, err = ginkgoreport.Focused(expected, f); err != nil {
			t.Fatalf("HUSK_CRITEST_FOCUS: %v", err)
		}
		args = append(args, "-ginkgo.focus", f)
	}
	_, hosts := Serve(t)
	// critest's NRI synchronization specs hold a plugin's Synchronize open
	// for 2s, NRI's default request timeout, which also bounds
	// Synchronize: with it huskd drops the plugin (as containerd does, the
	// specs' "spec discrepancy" skips), and the specs cannot see that no
	// container created meanwhile is lost.
	h := huskdtest.Start(t, huskdtest.Config(t, fmt.Sprintf("[registry]\nconfig_path = %q\n[nri]\nplugin_request_timeout = \"10s\"\n", hosts))...)

	removeNewShm(t)

	dir := t.TempDir()
	report := filepath.Join(dir, "critest.json")
	out, err := os.Create(filepath.Join(dir, "critest.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// -nri-socket: critest's NRI specs connect their plugins to this
	// huskd's own socket (huskdtest.Config), never the node's.
	args = append([]string{"-runtime-endpoint", "unix://" + h.Sock, "-image-endpoint", "unix://" + h.Sock,
		"-nri-socket", h.NRISocket, "-ginkgo.no-color", "-ginkgo.json-report", report}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	runErr := cmd.Run() // fails whenever a spec fails; the report says which
	specs, err := ginkgoreport.Read(report)
	if err != nil {
		log, _ := os.ReadFile(out.Name())
		t.Fatalf("critest: %v; no report: %v\n%s", runErr, err, tail(log, 4000))
	}
	printSummary(t, specs)

	broken, newly := ginkgoreport.Ratchet(expected, specs)
	for _, msg := range broken {
		t.Errorf("listed in %s but %s", expectedFile, msg)
	}
	if len(newly) > 0 {
		t.Logf("%d specs pass that %s does not list yet; add them:\n%s", len(newly), expectedFile, strings.Join(newly, "\n"))
	}
	if t.Failed() {
		t.Logf("critest's output: %s; huskd's log: %s", out.Name(), h.LogPath)
	}
}

// printSummary prints the counts per group and in total, and every spec
// that did not pass with its reason.
func printSummary(t *testing.T, specs []Spec) {
	type counts struct{ passed, failed, skipped int }
	groups := map[string]*counts{}
	var total counts
	var notPassed []Spec
	for _, s := range specs {
		c := groups[s.Group]
		if c == nil {
			c = &counts{}
			groups[s.Group] = c
		}
		switch s.State {
		case "passed":
			c.passed++
			total.passed++
		case "skipped", "pending":
			c.skipped++
			total.skipped++
			notPassed = append(notPassed, s)
		default:
			c.failed++
			total.failed++
			notPassed = append(notPassed, s)
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%-46s %6s %6s %7s\n", "critest group", "passed", "failed", "skipped")
	for _, g := range names {
		c := groups[g]
		fmt.Fprintf(&b, "%-46s %6d %6d %7d\n", g, c.passed, c.failed, c.skipped)
	}
	fmt.Fprintf(&b, "%-46s %6d %6d %7d\n", "total", total.passed, total.failed, total.skipped)
	sort.Slice(notPassed, func(i, j int) bool { return notPassed[i].Name < notPassed[j].Name })
	for _, s := range notPassed {
		if s.Message == "" && strings.Contains(s.Name, "benchmark") {
			s.Message = "a benchmark: critest runs them only with -benchmark (make bench)"
		}
		fmt.Fprintf(&b, "%s: %s\n    %s\n", strings.ToUpper(s.State), s.Name, ginkgoreport.OneLine(s.Message, 300))
	}
	t.Log("\n" + b.String())
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// removeNewShm removes, when the test ends, the System V shared memory
// segments that appeared during it and nothing is attached to: critest's
// host IPC specs make them on the host (ipcmk) and leave them.
func removeNewShm(t *testing.T) {
	before := shmSegments()
	t.Cleanup(func() {
		for id, nattch := range shmSegments() {
			if _, ok := before[id]; !ok && nattch == 0 {
				if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
					t.Errorf("removing shared memory segment %d: %v", id, err)
				}
			}
		}
	})
}

// shmSegments maps the host's shared memory segments to their attach counts.
func shmSegments() map[int]int {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return nil
	}
	segs := map[int]int{}
	lines := strings.Split(string(b), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		id, err1 := strconv.Atoi(f[1])
		nattch, err2 := strconv.Atoi(f[6])
		if err1 == nil && err2 == nil {
			segs[id] = nattch
		}
	}
	return segs
}
