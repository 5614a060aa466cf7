package apparmor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		has  []string
		not  []string
	}{
		{name: "default name, ABI 3", p: Params{ABI3: true},
			has: []string{"abi <abi/3.0>,\n", "profile husk-default flags=(attach_disconnected,mediate_deleted) {",
				"  signal (send,receive) peer=husk-default,", "  ptrace (trace,read,tracedby,readby) peer=husk-default,",
				"  deny mount,", "  unix,"}},
		{name: "2.x parser: no abi line", p: Params{},
			has: []string{"profile husk-default "}, not: []string{"abi "}},
		{name: "other name", p: Params{Name: "husk-test"},
			has: []string{"profile husk-test ", "peer=husk-test,"}, not: []string{"husk-default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Generate(tc.p)
			for _, s := range tc.has {
				if !strings.Contains(got, s) {
					t.Errorf("profile lacks %q:\n%s", s, got)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(got, s) {
					t.Errorf("profile has %q:\n%s", s, got)
				}
			}
			if strings.Count(got, "{") != strings.Count(got, "}") {
				t.Errorf("unbalanced braces:\n%s", got)
			}
			if strings.Contains(got, "#include") {
				t.Errorf("the profile must not depend on the node's /etc/apparmor.d:\n%s", got)
			}
		})
	}
}

// globRegexp turns an AppArmor path glob into a regexp, as the parser
// reads them: ** crosses directories, * and ? do not, {a,b} alternates.
func globRegexp(t *testing.T, glob string) *regexp.Regexp {
	t.Helper()
	var b strings.Builder
	b.WriteString("^")
	depth := 0
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(glob[i:], ']')
			class := glob[i+1 : i+end]
			if strings.HasPrefix(class, "^") {
				class = "^/" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case c == '{':
			depth++
			b.WriteString("(?:")
		case c == '}':
			depth--
			b.WriteString(")")
		case c == ',' && depth > 0:
			b.WriteString("|")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// TestDeniedPaths checks what the deny rules' globs mean: the host's
// kernel tunables and /sys are not writable, a process's own /proc
// files, the shm limits and the cgroup tree are.
func TestDeniedPaths(t *testing.T) {
	denied := func(path, perm string) bool {
		for _, list := range [][]string{deniedProcWrites, deniedProcAll, deniedSys} {
			for _, r := range list {
				glob, perms, _ := strings.Cut(r, " ")
				if strings.Contains(perms, perm) && globRegexp(t, glob).MatchString(path) {
					return true
				}
			}
		}
		return false
	}
	for _, tc := range []struct {
		path, perm string
		want       bool
	}{
		{"/proc/sysrq-trigger", "w", true},
		{"/proc/sysrq-trigger", "r", true},
		{"/proc/kcore", "r", true},
		{"/proc/sys/vm/drop_caches", "w", true},
		{"/proc/sys/net/ipv4/ip_forward", "w", true},
		{"/proc/sys/fs/file-max", "w", true},
		{"/proc/sys/kernel/core_pattern", "w", true},
		{"/proc/sys/kernel/modprobe", "w", true},
		{"/proc/sys/kernel/random/boot_id", "w", true},
		{"/proc/sys/kernel/sem", "w", true},
		{"/proc/sys/kernel/shmmax", "w", false},
		{"/proc/sys/kernel/shm_rmid_forced", "w", false},
		{"/proc/sysvipc/shm", "w", true},
		{"/proc/irq/1/smp_affinity", "w", true},
		{"/proc/fs/nfsd/threads", "w", true},
		{"/proc/1a/x", "w", true},
		{"/proc/1/oom_score_adj", "w", false},
		{"/proc/4242/attr/current", "w", false},
		{"/proc/4242/task/4243/comm", "w", false},
		{"/proc/1/status", "r", false},
		{"/proc/meminfo", "r", false},
		{"/sys/kernel/mm/transparent_hugepage/enabled", "w", true},
		{"/sys/class/net/eth0/mtu", "w", true},
		{"/sys/fs/bpf/x", "w", true},
		{"/sys/fs/cgroup/memory.max", "w", false},
		{"/sys/firmware/acpi/tables/DSDT", "r", true},
		{"/sys/kernel/security/apparmor/profiles", "r", true},
		{"/sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj", "r", true},
		{"/sys/class/net/eth0/mtu", "r", false},
	} {
		if got := denied(tc.path, tc.perm); got != tc.want {
			t.Errorf("%s %s: denied %v, want %v", tc.perm, tc.path, got, tc.want)
		}
	}
}

// TestProfileParses runs Debian's apparmor_parser over the profile without
// loading it (this machine's kernel has AppArmor off): the text must be
// policy the parser accepts, with and without the pinned ABI.
func TestProfileParses(t *testing.T) {
	dir := os.Getenv("HUSK_APPARMOR")
	if dir == "" {
		t.Skip("HUSK_APPARMOR is not set: run through `make test`, which unpacks Debian's apparmor")
	}
	parser := filepath.Join(dir, "sbin", "apparmor_parser")
	parse := func(profile string) error {
		cmd := exec.Command(parser, "-Q", "-K", "--base", filepath.Join(dir, "etc", "apparmor.d"),
			"-I", filepath.Join(dir, "etc", "apparmor.d"))
		cmd.Stdin = strings.NewReader(profile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("apparmor_parser: %s", out)
		}
		return err
	}
	for _, abi3 := range []bool{true, false} {
		if err := parse(Generate(Params{ABI3: abi3})); err != nil {
			t.Errorf("ABI3=%v: the parser refuses the profile: %v", abi3, err)
		}
	}
	// The control: the parser does refuse a broken rule.
	broken := strings.Replace(Generate(Params{ABI3: true}), "deny mount,", "deny mount /x rwz,", 1)
	if err := parse(broken); err == nil {
		t.Error("the parser accepted a broken profile: this test checks nothing")
	}
}

func TestHasProfile(t *testing.T) {
	list := "docker-default (enforce)\nhusk-default-old (enforce)\nhusk-default (complain)\n/usr/bin/man (enforce)\n"
	for _, tc := range []struct {
		name string
		want bool
	}{{"husk-default", true}, {"docker-default", true}, {"husk", false}, {"/usr/bin/man", true}, {"husk-default (", false}} {
		got, err := hasProfile(strings.NewReader(list), tc.name)
		if err != nil || got != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseMajor(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
	}{
		{"AppArmor parser version 3.0.8\nCopyright (C) 1999-2008 Novell Inc.\n", 3},
		{"AppArmor parser version 2.13.3\n", 2},
		{"AppArmor parser version 4.1.0~beta1\n", 4},
		{"garbage", 0},
	} {
		if got := parseMajor([]byte(tc.out)); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.out, got, tc.want)
		}
	}
}

// TestEnsureDefault loads through a stand-in parser that records what it
// was given, with the kernel's profile list in a file of the test's.
func TestEnsureDefault(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "profiles")
	saved := profilesFile
	profilesFile = list
	t.Cleanup(func() { profilesFile = saved })
	record := filepath.Join(dir, "loaded")
	parser := filepath.Join(dir, "apparmor_parser")
	script := "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'AppArmor parser version 3.0.8'; exit 0; fi\n" +
		"echo \"$@\" >" + record + ".args\ncat >" + record + "\n"
	if err := os.WriteFile(parser, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Parser: parser}

	if err := os.WriteFile(list, []byte("docker-default (enforce)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureDefault(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("the parser was not run: %v", err)
	}
	if string(got) != Generate(Params{ABI3: true}) {
		t.Errorf("the parser got:\n%s", got)
	}
	if args, _ := os.ReadFile(record + ".args"); strings.TrimSpace(string(args)) != "-Kr" {
		t.Errorf("parser arguments %q, want -Kr", args)
	}

	// Loaded already: the parser is not run again.
	os.Remove(record)
	if err := os.WriteFile(list, []byte("husk-default (enforce)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureDefault(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(record); err == nil {
		t.Error("the parser ran for a profile the kernel has")
	}

	// A parser that fails says so.
	os.WriteFile(list, nil, 0o644)
	bad := &Loader{Parser: "/bin/false"}
	if err := bad.EnsureDefault(context.Background()); err == nil {
		t.Error("a failing parser gave no error")
	}
}
