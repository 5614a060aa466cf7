package sandbox

import "testing"

func TestCleanCgroupParent(t *testing.T) {
	cases := []struct {
		in, want string
		err      bool
	}{
		{"/kubepods/burstable/pod123", "/kubepods/burstable/pod123", false},
		{"kubepods/besteffort", "/kubepods/besteffort", false},
		{"/kubepods//pod1/", "/kubepods/pod1", false},
		{"kubepods-besteffort-pod1.slice", "/kubepods-besteffort-pod1.slice", false},
		{"/", "/", false},
		{"/kubepods/../../etc", "", true},
		{"..", "", true},
		{"/a/..", "", true},
		{"/a/\x00b", "", true},
	}
	for _, c := range cases {
		got, err := CleanCgroupParent(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("CleanCgroupParent(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
