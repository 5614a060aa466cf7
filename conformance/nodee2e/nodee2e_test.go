package nodee2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/huskrt/husk/conformance/ginkgoreport"
)

// kubeVersion is the version scripts/kube-module.sh pins, which the image
// list was read from.
const kubeVersion = "v1.37.2"

// The counts of e2e_node.test v1.37.2's dry run focused on NodeConformance
// (measured by TestDryRun; a new version changes them). Upstream's build,
// with cgo, holds 1,276 specs: the static one leaves out the Serial
// NodeProblemDetector spec (scripts/node-e2e-build.sh).
var wantCounts = Counts{Total: 1275, Conformance: 614, Parallel: 432}

func TestCount(t *testing.T) {
	for _, c := range []struct {
		names []string
		want  Counts
	}{
		{nil, Counts{}},
		{[]string{"a", "b [NodeFeature:X]"}, Counts{Total: 2}},
		{[]string{"a [NodeConformance]", "b [NodeConformance] [Serial]", "c"}, Counts{Total: 3, Conformance: 2, Parallel: 1}},
		{[]string{"a [NodeConformance] [Slow]", "b [Flaky] [NodeConformance]", "c [Disruptive] [NodeConformance]", "d [NodeConformance]"},
			Counts{Total: 4, Conformance: 4, Parallel: 1}},
		// A serial spec counted once however many tags keep it aside.
		{[]string{"a [NodeConformance] [Serial] [Slow]"}, Counts{Total: 1, Conformance: 1}},
	} {
		var specs []ginkgoreport.Spec
		for _, n := range c.names {
			specs = append(specs, ginkgoreport.Spec{Name: n})
		}
		if got := Count(specs); got != c.want {
			t.Errorf("Count(%q) = %+v, want %+v", c.names, got, c.want)
		}
	}
	// Tags given as ginkgo labels only count as well.
	labelled := []ginkgoreport.Spec{{Name: "a", Labels: []string{"NodeConformance", "Serial"}}, {Name: "b", Labels: []string{"NodeConformance"}}}
	if got, want := Count(labelled), (Counts{Total: 2, Conformance: 2, Parallel: 1}); got != want {
		t.Errorf("Count(labelled) = %+v, want %+v", got, want)
	}
}

// The version the images were read from is the one the scripts build.
func TestVersionPinned(t *testing.T) {
	b, err := os.ReadFile("../../scripts/kube-module.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nKUBE_VERSION="+kubeVersion+"\n") {
		t.Errorf("scripts/kube-module.sh does not pin KUBE_VERSION=%s, which Images were read from: read them again", kubeVersion)
	}
}

// Every image's name is the one k8s.io/kubernetes' test/utils/image gives
// its Manifest entry. The kubernetes module is read from the module cache,
// where scripts/kubelet.sh and scripts/node-e2e-build.sh put it; the test
// is skipped when it is not there.
func TestImagesMatchManifest(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	manifest := filepath.Join(strings.TrimSpace(string(out)), "k8s.io/kubernetes@"+kubeVersion, "test/utils/image/manifest.go")
	b, err := os.ReadFile(manifest)
	if os.IsNotExist(err) {
		t.Skipf("%s is not in the module cache (scripts/kubelet.sh downloads it)", manifest)
	}
	if err != nil {
		t.Fatal(err)
	}
	names, err := manifestImages(string(b))
	if err != nil {
		t.Fatalf("%s: %v", manifest, err)
	}
	seen := map[string]bool{}
	for _, im := range Images {
		if seen[im.Name] {
			t.Errorf("%s listed twice", im.Name)
		}
		seen[im.Name] = true
		if im.Manifest == "" {
			continue
		}
		if got, ok := names[im.Manifest]; !ok {
			t.Errorf("%s: manifest.go has no %s", im.Name, im.Manifest)
		} else if got != im.Name {
			t.Errorf("%s: manifest.go names %s %s", im.Name, im.Manifest, got)
		}
		if im.Upstream == "" || im.Build == "" || im.UsedBy == "" {
			t.Errorf("%s: Upstream, Build and UsedBy must each say something", im.Name)
		}
	}
}

var (
	registryLine = regexp.MustCompile(`(?m)^\s*(\w+Registry):\s*"([^"]+)",`)
	configLine   = regexp.MustCompile(`(?m)^\s*configs\[(\w+)\] = Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}`)
)

// manifestImages reads manifest.go's default image names, by ImageID.
func manifestImages(src string) (map[string]string, error) {
	registries := map[string]string{}
	for _, m := range registryLine.FindAllStringSubmatch(src, -1) {
		if _, ok := registries[m[1]]; !ok { // initRegistry comes first
			registries[m[1]] = m[2]
		}
	}
	names := map[string]string{}
	for _, m := range configLine.FindAllStringSubmatch(src, -1) {
		names[m[1]] = registries[m[2]] + "/" + m[3] + ":" + m[4]
	}
	if len(registries) == 0 || len(names) == 0 {
		return nil, os.ErrNotExist
	}
	return names, nil
}

func TestManifestImages(t *testing.T) {
	src := `	initRegistry = RegistryList{
		PromoterE2eRegistry:      "registry.k8s.io/e2e-test-images",
		GcRegistry:               "registry.k8s.io",
	}
	configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.66.1"}
	configs[Pause] = Config{list.GcRegistry, "pause", "3.10.2"}
`
	got, err := manifestImages(src)
	if err != nil {
		t.Fatal(err)
	}
	if got["Agnhost"] != "registry.k8s.io/e2e-test-images/agnhost:2.66.1" || got["Pause"] != "registry.k8s.io/pause:3.10.2" || len(got) != 2 {
		t.Errorf("manifestImages = %v", got)
	}
	if _, err := manifestImages("package image"); err == nil {
		t.Error("a file without images is read")
	}
}

// TestDryRun lists the suite's specs with its own dry run, focused on
// NodeConformance as the run will be, and checks the counts: a binary that
// does not start, or of another version, fails here before any pod runs.
// It needs $HUSK_E2E_NODE (`make node-e2e-build` sets it).
func TestDryRun(t *testing.T) {
	bin := os.Getenv("HUSK_E2E_NODE")
	if bin == "" {
		t.Skip("$HUSK_E2E_NODE is not set (scripts/node-e2e-build.sh builds e2e_node.test)")
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ginkgo.dry-run", "--ginkgo.focus=NodeConformance",
		"--ginkgo.json-report="+report, "--report-dir="+dir)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	specs, err := ginkgoreport.Read(report)
	if err != nil {
		t.Fatal(err)
	}
	got := Count(specs)
	t.Logf("e2e_node.test dry run (%s): %d specs, %d NodeConformance, %d of them neither Serial, Slow, Flaky nor Disruptive",
		time.Since(start).Round(100*time.Millisecond), got.Total, got.Conformance, got.Parallel)
	if got != wantCounts {
		t.Errorf("counts %+v, want %+v", got, wantCounts)
	}
	// The focus selects exactly the NodeConformance specs: the others are
	// reported skipped.
	for _, s := range specs {
		if ran := s.State == "passed"; ran != s.HasTag("NodeConformance") {
			t.Errorf("%s: %s in a dry run focused on NodeConformance", s.Name, s.State)
			break
		}
	}
}

// TestPrograms checks the test images' programs scripts/node-e2e-build.sh
// builds from the kubernetes module: agnhost reports the version the specs'
// image name carries, nnp its effective uid. It needs
// $HUSK_E2E_NODE_PROGRAMS (`make node-e2e-build` sets it).
func TestPrograms(t *testing.T) {
	dir := os.Getenv("HUSK_E2E_NODE_PROGRAMS")
	if dir == "" {
		t.Skip("$HUSK_E2E_NODE_PROGRAMS is not set (scripts/node-e2e-build.sh builds the programs)")
	}
	var agnhostTag string
	for _, im := range Images {
		if im.Manifest == "Agnhost" {
			agnhostTag = im.Name[strings.LastIndex(im.Name, ":")+1:]
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"agnhost", "--version"}, "app version " + agnhostTag + "\n"},
		{[]string{"nonewprivs"}, fmt.Sprintf("Effective uid: %d\n", os.Geteuid())},
	} {
		out, err := exec.Command(filepath.Join(dir, c.args[0]), c.args[1:]...).CombinedOutput()
		if err != nil || string(out) != c.want {
			t.Errorf("%q: %q, %v; want %q", c.args, out, err, c.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "sample-device-plugin")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("sample-device-plugin: %v", err)
	}
}

// The ratchet file lists only spec names of the suite, each once, in
// order.
func TestExpectedFile(t *testing.T) {
	names, err := ginkgoreport.ReadExpected("../node-e2e-expected")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if !strings.HasPrefix(n, "[sig-") {
			t.Errorf("%q is not a node e2e spec name", n)
		}
		if i > 0 && names[i-1] >= n {
			t.Errorf("%q comes after %q: the file is sorted, each name once", n, names[i-1])
		}
	}
}
