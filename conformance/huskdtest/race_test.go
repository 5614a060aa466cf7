package huskdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The race detector's reports of a race-built program started as Launch
// starts huskd are found by RaceReports: without that, a race in huskd or
// a shim under make test would pass unseen.
func TestRaceReportsAreFound(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("the race detector needs cgo:", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "racy.go")
	prog := `package main

func main() {
	n := 0
	done := make(chan struct{})
	// The two increments are unordered (the channel orders only the
	// goroutine's before main's read): a race every run, whatever the
	// timing.
	go func() { n++; close(done) }()
	n++
	<-done
	println(n)
}
`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "racy")
	build := exec.Command("go", "build", "-race", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a racy program: %v\n%s", err, out)
	}
	h := &Huskd{Dir: dir}
	if r := h.RaceReports(); len(r) != 0 {
		t.Fatalf("reports before anything ran: %v", r)
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(), raceEnv(dir))
	_ = run.Run() // exits 66 after a report
	r := h.RaceReports()
	if len(r) != 1 || !strings.Contains(r[0], "DATA RACE") {
		t.Fatalf("race reports: %q; want one DATA RACE", r)
	}
}
