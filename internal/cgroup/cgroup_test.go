package cgroup

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParent(t *testing.T) {
	cases := []struct {
		driver   Driver
		in, want string
		err      bool
	}{
		{Cgroupfs, "/kubepods/burstable/pod123", "/kubepods/burstable/pod123", false},
		{Cgroupfs, "kubepods/besteffort", "/kubepods/besteffort", false},
		{Cgroupfs, "/kubepods//pod1/", "/kubepods/pod1", false},
		// A slice name under cgroupfs is a plain directory name.
		{Cgroupfs, "kubepods-besteffort-pod1.slice", "/kubepods-besteffort-pod1.slice", false},
		{Cgroupfs, "/", "/", false},
		{Cgroupfs, "/kubepods/../../etc", "", true},
		{Cgroupfs, "..", "", true},
		{Cgroupfs, "/a/..", "", true},
		{Cgroupfs, "/a/\x00b", "", true},
		{Cgroupfs, "kubepods.slice:cri-husk:x", "", true},
		{Systemd, "kubepods-besteffort-pod1.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", false},
		{Systemd, "kubepods.slice", "/kubepods.slice", false},
		{Systemd, "-.slice", "/", false},
		// kubelet's systemd driver sends the slice's cgroupfs path.
		{Systemd, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", false},
		{Systemd, "/kubepods.slice/kubepods-burstable.slice/", "/kubepods.slice/kubepods-burstable.slice", false},
		{Systemd, "/kubepods.slice", "/kubepods.slice", false},
		// A path that is not where systemd puts its last slice.
		{Systemd, "/kubepods.slice/kubepods-besteffort-pod1.slice", "", true},
		{Systemd, "/other.slice/kubepods.slice", "", true},
		{Systemd, "/kubepods.slice/../kubepods.slice", "", true},
		{Systemd, "/", "", true},
		{Systemd, "/kubepods/besteffort", "", true},
		{Systemd, "kubepods", "", true},
		{Systemd, "kubepods--a.slice", "", true},
		{Systemd, "kubepods.slice:cri-husk:x", "", true},
		{Systemd, "a.slice\x00", "", true},
	}
	for _, c := range cases {
		got, err := c.driver.Parent(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s.Parent(%q) = %q, %v; want %q, error %v", c.driver, c.in, got, err, c.want, c.err)
		}
	}
}

func TestNames(t *testing.T) {
	slice := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
	scope := slice + "/cri-husk-" + id + ".scope"
	cases := []struct {
		name      string
		got, want string
	}{
		{"cgroupfs child", Cgroupfs.Child("/kubepods/pod1", id), "/kubepods/pod1/" + id},
		{"systemd child", Systemd.Child(slice, id), scope},
		{"systemd child of the root", Systemd.Child("/", id), "/cri-husk-" + id + ".scope"},
		{"cgroupfs sibling", Sibling("/kubepods/pod1/pause", id), "/kubepods/pod1/" + id},
		{"systemd sibling", Sibling(slice+"/cri-husk-pause.scope", id), scope},
		{"cgroupfs spec path", SpecPath("/kubepods/pod1/" + id), "/kubepods/pod1/" + id},
		{"systemd spec path", SpecPath(scope), "kubepods-besteffort-pod1.slice:cri-husk:" + id},
		{"systemd spec path of the root", SpecPath("/cri-husk-" + id + ".scope"), "-.slice:cri-husk:" + id},
		// A directory that only looks like a scope is not one without an id.
		{"empty scope", SpecPath("/a/cri-husk-.scope"), "/a/cri-husk-.scope"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestIsSystemdSpecPath(t *testing.T) {
	for p, want := range map[string]bool{
		"kubepods-besteffort-pod1.slice:cri-husk:" + id: true,
		":cri-husk:" + id:      true,
		"-.slice:cri-husk:x":   true,
		"/kubepods/pod1/" + id: false,
		"":                     false,
		"a.slice:b":            false,
		"/a.slice:b:c":         false,
		"a:b:c":                false,
		"a.slice:b:c:d":        false,
	} {
		if got := IsSystemdSpecPath(p); got != want {
			t.Errorf("IsSystemdSpecPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestOwns(t *testing.T) {
	slice := "/kubepods.slice/kubepods-pod1.slice"
	cases := []struct {
		p    string
		want bool
	}{
		{"/kubepods/pod1/" + id, true},
		{slice + "/cri-husk-" + id + ".scope", true},
		{"/" + id, true},
		{"/kubepods/pod1/" + strings.Repeat("e", 64), false},
		{slice + "/cri-containerd-" + id + ".scope", false},
		{slice + "/cri-husk-" + id + ".slice", false},
		{"/kubepods/../system.slice/" + id, false},
		{"kubepods/" + id, false},
		{"/kubepods", false},
		{"", false},
	}
	for _, c := range cases {
		if got := Owns(c.p, id); got != c.want {
			t.Errorf("Owns(%q) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestParseDriver(t *testing.T) {
	for in, want := range map[string]Driver{"": Cgroupfs, "cgroupfs": Cgroupfs, "systemd": Systemd, "Systemd": "", "v2": ""} {
		got, err := ParseDriver(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ParseDriver(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// A pod without a cgroup_parent gets its own cgroup in the default
// parent, which OwnsPod recognises in a record and Manager opens with the
// driver that made it.
func TestPodCgroup(t *testing.T) {
	for _, c := range []struct {
		driver       Driver
		parent, want string
		slice        bool
	}{
		{Cgroupfs, "/husk", "/husk/pod" + id, false},
		{Cgroupfs, "/a.slice", "/a.slice/pod" + id, false},
		{Systemd, "/husk.slice", "/husk.slice/husk-pod" + id + ".slice", true},
		{Systemd, "/a.slice/a-b.slice", "/a.slice/a-b.slice/a-b-pod" + id + ".slice", true},
		{Systemd, "/", "/pod" + id + ".slice", true},
	} {
		got := c.driver.PodCgroup(c.parent, id)
		if got != c.want {
			t.Errorf("%s.PodCgroup(%q) = %q, want %q", c.driver, c.parent, got, c.want)
		}
		if !OwnsPod(got, id) {
			t.Errorf("OwnsPod(%q) = false", got)
		}
		if isSlice(got) != c.slice {
			t.Errorf("isSlice(%q) = %v, want %v", got, !c.slice, c.slice)
		}
	}
	for _, p := range []string{"/husk/" + id, "/husk/pod" + id + "x", "husk/pod" + id, "/husk/../pod" + id, "/husk/xpod" + id + ".slice", "/husk/pod" + strings.Repeat("0", 64)} {
		if OwnsPod(p, id) {
			t.Errorf("OwnsPod(%q) = true", p)
		}
	}
	if isSlice("/kubepods-besteffort-pod1.slice") {
		t.Error("a cgroupfs directory named x-y.slice at the top is taken for a systemd slice")
	}
}

// Undo writes back the old limits, and "none" where only the new had one:
// zero would leave the new value in place.
func TestUndo(t *testing.T) {
	old := &cgroups.Resources{CpuShares: 512, Memory: 64 << 20}
	next := &cgroups.Resources{CpuShares: 256, CpuWeight: 10, CpuQuota: 5000, CpuPeriod: 50000, Memory: 8 << 20, MemorySwap: 16 << 20, CpusetCpus: "0"}
	got := Undo(old, next)
	want := cgroups.Resources{CpuShares: 512, CpuWeight: 100, CpuQuota: -1, CpuPeriod: 100000, Memory: 64 << 20, MemorySwap: -1}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Undo = %+v, want %+v", *got, want)
	}
	if old.CpuQuota != 0 || old.MemorySwap != 0 {
		t.Errorf("Undo changed its argument: %+v", *old)
	}
	same := Undo(old, &cgroups.Resources{})
	if !reflect.DeepEqual(*same, *old) {
		t.Errorf("Undo of nothing = %+v, want %+v", *same, *old)
	}
}
