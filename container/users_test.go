package container

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseUserDB(t *testing.T) {
	passwd := strings.Join([]string{
		"# comment",
		"",
		"root:x:0:0:root:/root:/bin/sh",
		"  app:x:1000:1000::/home/app:/bin/sh  \r",
		"short:x:5",
		"neg:x:-1:0::/:/bin/sh",
		"big:x:4294967296:0::/:/bin/sh",
		"word:x:abc:0::/:/bin/sh",
		":x:7:7::/:/bin/sh",
		"+nisuser::::::",
		"app:x:2000:2000::/home/app2:/bin/sh", // a duplicate: the first wins
		"1234:x:99:99::/:/bin/sh",             // a numeric name is looked up as a uid
		"nogroup:x:500:501",                   // four fields are enough
	}, "\n")
	group := strings.Join([]string{
		"root:x:0:",
		"wheel:x:10:root, app ,,app",
		"users:x:100:app",
		"bad:x:",
		"badgid:x:g:app",
		"-nisgroup",
		"staff:x:50",
		"dup:x:100:root", // gid 100 again, listing root
	}, "\n")
	db := ParseUserDB([]byte(passwd), []byte(group))

	users := []struct {
		query    string
		uid, gid int64
		name     string
		ok       bool
	}{
		{"root", 0, 0, "root", true},
		{"0", 0, 0, "root", true},
		{"app", 1000, 1000, "app", true},
		{"1000", 1000, 1000, "app", true},
		{"2000", 2000, 2000, "app", true},
		{"nogroup", 500, 501, "nogroup", true},
		{"99", 99, 99, "1234", true},
		{"1234", 0, 0, "", false},
		{"short", 0, 0, "", false},
		{"neg", 0, 0, "", false},
		{"big", 0, 0, "", false},
		{"word", 0, 0, "", false},
		{"+nisuser", 0, 0, "", false},
		{"", 0, 0, "", false},
		{"7", 0, 0, "", false},
		{"ghost", 0, 0, "", false},
	}
	for _, u := range users {
		uid, gid, name, ok := db.LookupUser(u.query)
		if uid != u.uid || gid != u.gid || name != u.name || ok != u.ok {
			t.Errorf("LookupUser(%q) = %d, %d, %q, %v; want %d, %d, %q, %v", u.query, uid, gid, name, ok, u.uid, u.gid, u.name, u.ok)
		}
	}

	groups := []struct {
		query string
		gid   int64
		ok    bool
	}{
		{"root", 0, true}, {"0", 0, true}, {"wheel", 10, true}, {"10", 10, true},
		{"staff", 50, true}, {"50", 50, true}, {"dup", 100, true}, {"100", 100, true},
		{"bad", 0, false}, {"badgid", 0, false}, {"nisgroup", 0, false}, {"-nisgroup", 0, false}, {"ghost", 0, false},
	}
	for _, g := range groups {
		gid, ok := db.LookupGroup(g.query)
		if gid != g.gid || ok != g.ok {
			t.Errorf("LookupGroup(%q) = %d, %v; want %d, %v", g.query, gid, ok, g.gid, g.ok)
		}
	}

	memberships := []struct {
		user string
		want []int64
	}{
		{"app", []int64{10, 100}},
		{"root", []int64{10, 100}},
		{"ghost", nil},
		{"", nil},
	}
	for _, m := range memberships {
		if got := db.GroupsOf(m.user); !reflect.DeepEqual(got, m.want) {
			t.Errorf("GroupsOf(%q) = %v, want %v", m.user, got, m.want)
		}
	}
}

func TestParseUserDBEmpty(t *testing.T) {
	db := ParseUserDB(nil, nil)
	if _, _, _, ok := db.LookupUser("root"); ok {
		t.Error("found root in an empty database")
	}
	if _, ok := db.LookupGroup("0"); ok {
		t.Error("found group 0 in an empty database")
	}
	if g := db.GroupsOf("root"); g != nil {
		t.Errorf("GroupsOf = %v", g)
	}
}

// layerTree describes one layer: path → content. Content "dir/" makes a
// directory, "->target" a symlink, "whiteout" a 0/0 character device,
// "opaque/" an opaque directory; anything else is a regular file.
type layerTree map[string]string

func buildLayers(t *testing.T, trees ...layerTree) []string {
	t.Helper()
	var dirs []string
	for i, tree := range trees {
		dir := filepath.Join(t.TempDir(), "layer", string(rune('a'+i)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range tree {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			var err error
			switch {
			case content == "dir/":
				err = os.MkdirAll(p, 0o755)
			case content == "opaque/":
				if err = os.MkdirAll(p, 0o755); err == nil {
					err = unix.Setxattr(p, opaqueXattr, []byte("y"), 0)
					if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
						t.Skipf("cannot set %s on %s: %v", opaqueXattr, p, err)
					}
				}
			case content == "whiteout":
				if os.Geteuid() != 0 {
					t.Skip("whiteouts are character devices: mknod needs root")
				}
				err = unix.Mknod(p, unix.S_IFCHR|0o600, 0)
			case strings.HasPrefix(content, "->"):
				err = os.Symlink(strings.TrimPrefix(content, "->"), p)
			default:
				err = os.WriteFile(p, []byte(content), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

func TestOpenImageFile(t *testing.T) {
	notExist := func(err error) bool { return errors.Is(err, os.ErrNotExist) }
	cases := []struct {
		name   string
		layers []layerTree // bottom first
		file   string
		want   string
		err    func(error) bool // nil: must succeed
	}{
		{name: "one layer", layers: []layerTree{{"etc/passwd": "root"}}, file: "etc/passwd", want: "root"},
		{name: "leading slash", layers: []layerTree{{"etc/passwd": "root"}}, file: "/etc/passwd", want: "root"},
		{name: "top layer wins", layers: []layerTree{{"etc/passwd": "old"}, {"etc/passwd": "new"}}, file: "etc/passwd", want: "new"},
		{name: "from a lower layer through an upper directory",
			layers: []layerTree{{"etc/passwd": "low"}, {"etc/group": "g"}}, file: "etc/passwd", want: "low"},
		{name: "from a lower layer past a layer without the directory",
			layers: []layerTree{{"etc/passwd": "low"}, {"usr/bin/x": "x"}}, file: "etc/passwd", want: "low"},
		{name: "whiteout", layers: []layerTree{{"etc/passwd": "old"}, {"etc/passwd": "whiteout"}}, file: "etc/passwd", err: notExist},
		{name: "whiteout, then recreated", layers: []layerTree{{"etc/passwd": "old"}, {"etc/passwd": "whiteout"}, {"etc/passwd": "again"}},
			file: "etc/passwd", want: "again"},
		{name: "whited-out parent", layers: []layerTree{{"etc/passwd": "old"}, {"etc": "whiteout"}}, file: "etc/passwd", err: notExist},
		{name: "opaque parent hides below", layers: []layerTree{{"etc/passwd": "old"}, {"etc": "opaque/", "etc/group": "g"}},
			file: "etc/passwd", err: notExist},
		{name: "opaque parent keeps its own", layers: []layerTree{{"etc/passwd": "old"}, {"etc": "opaque/", "etc/passwd": "new"}},
			file: "etc/passwd", want: "new"},
		{name: "opaque grandparent hides below", layers: []layerTree{{"etc/ssl/x": "old"}, {"etc": "opaque/"}},
			file: "etc/ssl/x", err: notExist},
		{name: "opaque below the found layer does not matter", layers: []layerTree{{"etc": "opaque/", "etc/passwd": "low"}, {"etc/group": "g"}},
			file: "etc/passwd", want: "low"},
		{name: "file over a directory hides it", layers: []layerTree{{"etc/passwd": "old"}, {"etc": "not a dir"}}, file: "etc/passwd", err: notExist},
		{name: "relative symlink across layers", layers: []layerTree{{"usr/lib/passwd": "lib"}, {"etc/passwd": "->../usr/lib/passwd"}},
			file: "etc/passwd", want: "lib"},
		{name: "absolute symlink resolves in the image", layers: []layerTree{{"etc/hostname": "image's", "etc/passwd": "->/etc/hostname"}},
			file: "etc/passwd", want: "image's"},
		{name: "climbing symlink stops at the image root", layers: []layerTree{{"etc/hostname": "image's", "etc/passwd": "->../../../../../../../../etc/hostname"}},
			file: "etc/passwd", want: "image's"},
		{name: "symlink out to a host file", layers: []layerTree{{"etc/passwd": "->/proc/self/status"}},
			file: "etc/passwd", err: notExist},
		{name: "symlinked directory", layers: []layerTree{{"private/etc/passwd": "p", "etc": "->private/etc"}},
			file: "etc/passwd", want: "p"},
		{name: "symlinked directory in an upper layer", layers: []layerTree{{"private/etc/passwd": "p", "etc/passwd": "shadowed"}, {"etc": "whiteout"}, {"etc": "->/private/etc"}},
			file: "etc/passwd", want: "p"},
		{name: "dangling symlink", layers: []layerTree{{"etc/passwd": "->nowhere"}}, file: "etc/passwd", err: notExist},
		{name: "symlink loop", layers: []layerTree{{"etc/passwd": "->passwd"}}, file: "etc/passwd",
			err: func(err error) bool { return errors.Is(err, syscall.ELOOP) }},
		{name: "missing", layers: []layerTree{{"etc/group": "g"}}, file: "etc/passwd", err: notExist},
		{name: "file as a directory", layers: []layerTree{{"etc/passwd": "x"}}, file: "etc/passwd/x", err: notExist},
		{name: "a directory", layers: []layerTree{{"etc/passwd": "dir/"}}, file: "etc/passwd",
			err: func(err error) bool { return err != nil && !errors.Is(err, os.ErrNotExist) }},
		{name: "no layers", file: "etc/passwd", err: notExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layers := buildLayers(t, c.layers...)
			got, err := readImageFile(layers, c.file)
			if c.err != nil {
				if !c.err(err) {
					t.Fatalf("err = %v (content %q)", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// readImageFile reads what OpenImageFile opens.
func readImageFile(layers []string, name string) ([]byte, error) {
	f, err := OpenImageFile(layers, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func TestOpenImageFileMissingLayer(t *testing.T) {
	_, err := OpenImageFile([]string{filepath.Join(t.TempDir(), "gone")}, "etc/passwd")
	if err == nil {
		t.Fatal("no error for a missing layer directory")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Errorf("err %v does not say which path", err)
	}
}

// ImageUserDB, as CreateContainer uses it: the merged files, the top
// layer's passwd over the bottom's.
func TestImageUserDB(t *testing.T) {
	layers := buildLayers(t,
		layerTree{"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\nusers:x:100:app\n"},
		layerTree{"etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"})
	db := ImageUserDB(layers)
	if _, gid, _, ok := db.LookupUser("app"); !ok || gid != 1000 {
		t.Errorf("app: gid %d, found %v", gid, ok)
	}
	if g := db.GroupsOf("app"); !reflect.DeepEqual(g, []int64{100}) {
		t.Errorf("GroupsOf(app) = %v", g)
	}
	if _, _, _, ok := ImageUserDB(buildLayers(t, layerTree{"bin/sh": "x"})).LookupUser("root"); ok {
		t.Error("found root in an image without /etc/passwd")
	}
}

// Lines of any length are read without being held whole: one over the
// bound is skipped, the lines around it still count; a line just under
// the bound is read; the last line needs no newline.
func TestUserDBLongLines(t *testing.T) {
	members := func(n int) string { return strings.Repeat("someone,", n/8) }
	group := "before:x:1:app\n" +
		"huge:x:2:" + members(maxUserDBLine) + "app\n" +
		"big:x:3:" + members(maxUserDBLine-64) + "app\n" +
		"after:x:4:app"
	db := ParseUserDB([]byte("first:x:1:1\n"+strings.Repeat("x", 3*maxUserDBLine)+"\nlast:x:2:2"), []byte(group))
	if g := db.GroupsOf("app"); !reflect.DeepEqual(g, []int64{1, 3, 4}) {
		t.Errorf("GroupsOf(app) = %v, want [1 3 4] (the over-long line skipped)", g)
	}
	for _, u := range []string{"first", "last"} {
		if _, _, _, ok := db.LookupUser(u); !ok {
			t.Errorf("%s not found around an over-long line", u)
		}
	}
}

// GroupsOf stops at the kernel's NGROUPS_MAX: a group file cannot make
// huskd hold more.
func TestUserDBGroupsBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i < maxGroups+10; i++ {
		fmt.Fprintf(&b, "g%d:x:%d:app\n", i, i+1)
	}
	if n := len(ParseUserDB(nil, []byte(b.String())).GroupsOf("app")); n != maxGroups {
		t.Errorf("GroupsOf kept %d groups, want %d", n, maxGroups)
	}
}
