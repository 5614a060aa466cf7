//lint:file-ignore SA1019 the deprecated seccomp and AppArmor fields are still honoured; these tests cover them

package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// A Localhost seccomp reference cannot climb out of the profile root,
// and a file that is not a profile is not quoted back.
func TestSpecSeccompRefusesClimbing(t *testing.T) {
	const field = "config.linux.security_context.seccomp.localhost_ref"
	profile := func(ref string) func(*SpecInput) {
		return func(in *SpecInput) {
			secCtx(in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: ref}
			// Every file reads as a valid profile: only the reference may
			// make the difference.
			in.ReadFile = func(string) ([]byte, error) { return []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), nil }
		}
	}
	runSpecCases(t, []specCase{
		{name: "relative climb", mod: profile("../../../etc/shadow"), code: codes.InvalidArgument, field: field},
		{name: "absolute climb", mod: profile(testProfiles + "/../../../etc/shadow"), code: codes.InvalidArgument, field: field},
		{name: "climb behind localhost/", mod: profile("localhost/../x.json"), code: codes.InvalidArgument, field: field},
		{name: "NUL", mod: profile("x.json\x00"), code: codes.InvalidArgument, field: field},
		{name: "deprecated field climbs", mod: func(in *SpecInput) {
			profile("")(in)
			secCtx(in).Seccomp = nil
			secCtx(in).SeccompProfilePath = "localhost/profiles/../../x.json"
		}, code: codes.InvalidArgument, field: "config.linux.security_context.seccomp_profile_path"},
		{name: "dots in a name are fine", mod: profile("profiles/a..b.json"), check: func(t *testing.T, s *specs.Spec, _ User) {
			if s.Linux.Seccomp == nil {
				t.Error("no profile")
			}
		}},
	})

	in := baseInput()
	secCtx(&in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/etc/shadow"}
	in.ReadFile = func(string) ([]byte, error) { return []byte("root:$6$secret:19000:0:99999:7:::\n"), nil }
	_, _, err := Spec(in)
	if errdefs.Code(err) != codes.InvalidArgument || strings.Contains(err.Error(), "'r'") || strings.Contains(err.Error(), "secret") {
		t.Errorf("a file that is not JSON: %v; want InvalidArgument that quotes none of it", err)
	}
}

func TestCriMountRefusesDotDot(t *testing.T) {
	runSpecCases(t, []specCase{{
		name: "container path climbs",
		mod: func(in *SpecInput) {
			in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/data/../../proc/sys", HostPath: "/tmp"}}
		},
		code: codes.InvalidArgument, field: "config.mounts[0].container_path",
	}})
}

func TestReadSeccompProfile(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "seccomp")
	write := func(p string, size int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(" ", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "ok.json"), 100)
	write(filepath.Join(root, "max.json"), maxSeccompProfile)
	write(filepath.Join(root, "big.json"), maxSeccompProfile+1)
	write(filepath.Join(dir, "operator", "p.json"), 10)
	// As the security-profiles-operator links its directory into the root.
	if err := os.Symlink(filepath.Join(dir, "operator"), filepath.Join(root, "operator")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		ok   bool
		says string
	}{
		{filepath.Join(root, "ok.json"), true, ""},
		{filepath.Join(root, "max.json"), true, ""},
		{filepath.Join(root, "operator", "p.json"), true, ""},
		{filepath.Join(root, "big.json"), false, "larger than 1048576"},
		{filepath.Join(root, "fifo.json"), false, "not a regular file"},
		{"/dev/zero", false, "not a regular file"},
		{root, false, "not a regular file"},
		{filepath.Join(root, "missing.json"), false, "no such file"},
	} {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := readSeccompProfile(c.file); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("still reading after 10s")
			}
			if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), c.says)) {
				t.Errorf("readSeccompProfile: %v; want ok %v saying %q", err, c.ok, c.says)
			}
		})
	}
}
