package apparmor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kernel interfaces, variables so that tests can point them elsewhere.
var (
	enabledFile  = "/sys/module/apparmor/parameters/enabled"
	profilesFile = "/sys/kernel/security/apparmor/profiles"
)

// Enabled says whether the kernel enforces AppArmor: the module is on and
// its securityfs interface is there to load profiles into.
func Enabled() bool {
	b, err := os.ReadFile(enabledFile)
	if err != nil || len(b) == 0 || b[0] != 'Y' {
		return false
	}
	_, err = os.Stat(profilesFile)
	return err == nil
}

// Loader loads the default profile into the kernel when a container first
// needs it, and again whenever it has gone (an admin's aa-teardown or
// apparmor.service reload unloads every profile).
type Loader struct {
	// Parser is the apparmor_parser to run; "" finds it in PATH or /sbin.
	Parser string

	mu sync.Mutex
}

// EnsureDefault loads DefaultProfile unless the kernel has it already.
func (l *Loader) EnsureDefault(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok, err := loaded(DefaultProfile); err != nil || ok {
		return err
	}
	parser, err := l.parser()
	if err != nil {
		return err
	}
	abi3, err := parserIsV3(ctx, parser)
	if err != nil {
		return err
	}
	return load(ctx, parser, Generate(Params{Name: DefaultProfile, ABI3: abi3}))
}

func (l *Loader) parser() (string, error) {
	if l.Parser != "" {
		return l.Parser, nil
	}
	if p, err := exec.LookPath("apparmor_parser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("apparmor_parser is not installed (Debian: the apparmor package), so the default AppArmor profile cannot be loaded")
}

// loaded says whether the kernel holds a profile called name. The list
// has one "<name> (<mode>)" line per profile.
func loaded(name string) (bool, error) {
	f, err := os.Open(profilesFile)
	if err != nil {
		return false, fmt.Errorf("listing AppArmor profiles: %w", err)
	}
	defer f.Close()
	return hasProfile(f, name)
}

func hasProfile(r io.Reader, name string) (bool, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if n, _, ok := strings.Cut(sc.Text(), " ("); ok && n == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

var parserVersion = regexp.MustCompile(`version (\d+)\.`)

// parserIsV3 says whether the parser knows AppArmor 3's "abi" keyword.
func parserIsV3(ctx context.Context, parser string) (bool, error) {
	out, err := run(ctx, parser, nil, "--version")
	if err != nil {
		return false, err
	}
	return parseMajor(out) >= 3, nil
}

// parseMajor is the major version in apparmor_parser --version's first
// line ("AppArmor parser version 3.0.8"); 0 when there is none.
func parseMajor(out []byte) int {
	m := parserVersion.FindSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// load replaces (or adds) the profile in the kernel. -K: the parser's
// cache would outlive a change of husk's profile text.
func load(ctx context.Context, parser, profile string) error {
	_, err := run(ctx, parser, strings.NewReader(profile), "-Kr")
	return err
}

func run(ctx context.Context, parser string, stdin io.Reader, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parser, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", parser, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}
