// Package conformance holds husk's end-to-end checks; this file holds the
// architecture rules, as tests so that they cannot drift.
package conformance

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// Only husk-runc links libcontainer: huskd stays restartable and lean, and
// the shim, one per pod, stays small (see shim's package comment). cri/ maps
// requests and never touches the kernel itself.
func TestOnlyHuskRuncLinksLibcontainer(t *testing.T) {
	for _, pkg := range []string{"../cmd/huskd", "../cmd/husk-shim", "../cri", "../sandbox", "../shim"} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, "github.com/opencontainers/runc") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
	found := false
	for _, d := range deps(t, "../cmd/husk-runc") {
		found = found || d == "github.com/opencontainers/runc/libcontainer/nsenter"
	}
	if !found {
		t.Error("husk-runc does not import libcontainer's nsenter: its init re-exec cannot join namespaces")
	}
}

// The shim imports neither grpc nor huskd's packages: it is paid per pod.
func TestShimDependsOnLittle(t *testing.T) {
	for _, d := range deps(t, "../cmd/husk-shim") {
		if strings.HasPrefix(d, "google.golang.org/grpc") || strings.HasPrefix(d, "github.com/huskrt/husk/cri") ||
			strings.HasPrefix(d, "github.com/huskrt/husk/sandbox") || strings.HasPrefix(d, "k8s.io/cri-api") {
			t.Errorf("husk-shim depends on %s", d)
		}
	}
}

// husk-runc's result format lives in a leaf that both it and the shim
// import: runc/result depends on the standard library only, and the shim
// reaches none of husk-runc's own package (package runc links
// libcontainer).
func TestRuncResultIsALeaf(t *testing.T) {
	for _, d := range deps(t, "../runc/result") {
		if strings.Contains(d, ".") && d != "github.com/huskrt/husk/runc/result" {
			t.Errorf("runc/result depends on %s", d)
		}
	}
	found := false
	for _, d := range deps(t, "../cmd/husk-shim") {
		found = found || d == "github.com/huskrt/husk/runc/result"
		if d == "github.com/huskrt/husk/runc" {
			t.Error("husk-shim depends on package runc")
		}
	}
	if !found {
		t.Error("husk-shim does not read husk-runc's result through runc/result")
	}
}

// The pause uses the C library only.
func TestPauseUsesLibcOnly(t *testing.T) {
	src, err := os.ReadFile("../pause/pause.c")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"errno.h": true, "signal.h": true, "stdio.h": true, "stdlib.h": true,
		"string.h": true, "sys/types.h": true, "sys/wait.h": true, "unistd.h": true}
	for _, m := range regexp.MustCompile(`(?m)^#include\s+[<"]([^>"]+)[>"]`).FindAllStringSubmatch(string(src), -1) {
		if !allowed[m[1]] {
			t.Errorf("pause.c includes %s", m[1])
		}
	}
}
