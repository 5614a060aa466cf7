package cgwarm

import (
	"os"
	"reflect"
	"testing"
	"time"
)

func TestCandidates(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"v2", "0::/system.slice/husk.service\n", []string{"/r/system.slice/husk.service/cgroup.procs"}},
		{"v1 with a named hierarchy and the unified one", "12:pids:/a\n4:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\n",
			[]string{"/r/pids/a/cgroup.procs", "/r/cpu/b/cgroup.procs", "/r/systemd/c/cgroup.procs", "/r/d/cgroup.procs"}},
		{"root cgroup", "0::/\n", []string{"/r/cgroup.procs"}},
		{"garbage", "nonsense\n\n", nil},
	}
	for _, c := range cases {
		if got := candidates("/r", c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: candidates = %v, want %v", c.name, got, c.want)
		}
	}
}

// On a machine with cgroups, huskd's own cgroup is found, and warming moves
// nothing: the process stays where it was.
func TestWarmFindsOwnCgroupAndMovesNothing(t *testing.T) {
	p := find()
	if p == "" {
		t.Skip("no cgroup hierarchy mounted under /sys/fs/cgroup")
	}
	before := readSelfCgroup(t)
	procs = p
	Warm()
	for busy.Load() {
		time.Sleep(time.Millisecond)
	}
	if after := readSelfCgroup(t); after != before {
		t.Errorf("/proc/self/cgroup changed:\n%s\nto\n%s", before, after)
	}
}

func readSelfCgroup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
