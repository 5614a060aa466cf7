package huskdtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRestoreSysctl(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for " + sysctlState)
	}
	setting := filepath.Join(t.TempDir(), "ip_forward")
	state := filepath.Join(sysctlState, strings.ReplaceAll(strings.TrimPrefix(setting, "/proc/sys/"), "/", "."))
	write := func(v string) {
		if err := os.WriteFile(setting, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string { b, _ := os.ReadFile(setting); return strings.TrimSpace(string(b)) }
	write("0")

	t.Run("alone", func(t *testing.T) {
		RestoreSysctl(t, setting)
		RestoreSysctl(t, setting) // a second user in the process
		write("1")
	})
	if read() != "0" {
		t.Errorf("after the only users: %s, want 0 back", read())
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file left: %v", err)
	}

	// Another live process (pid 1) changed nothing yet but uses it: the
	// value it saw first is the one to restore, and only after it ends.
	if err := os.MkdirAll(sysctlState, 0o755); err != nil { // gone with the last state file
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("0\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(state)
	write("1")
	t.Run("with another process", func(t *testing.T) {
		RestoreSysctl(t, setting)
	})
	if read() != "1" {
		t.Errorf("restored while another process used it: %s", read())
	}
	b, _ := os.ReadFile(state)
	if string(b) != "0\n1\n" {
		t.Errorf("state after leaving: %q, want the original and pid 1 only", b)
	}

	// A user that died without cleaning up does not hold the value.
	if err := os.WriteFile(state, []byte("0\n999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("with a dead process", func(t *testing.T) {
		RestoreSysctl(t, setting)
	})
	if read() != "0" {
		t.Errorf("with only a dead user left: %s, want 0 restored", read())
	}
}
