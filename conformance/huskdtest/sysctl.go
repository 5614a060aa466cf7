package huskdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// sysctlState is where test processes agree on a host setting's value
// before any of them changed it: `go test ./...` runs packages as parallel
// processes, so a value saved by one test may be what another process's
// pods just set (the bridge plugin turns ip_forward on).
const sysctlState = "/run/husk-test"

var (
	sysctlMu    sync.Mutex
	sysctlUsers = map[string]int{} // path → tests of this process using it
)

// RestoreSysctl puts a host setting back, when the last test of any test
// process that uses it ends, as it was before the first one began. A
// process that died without cleaning up is ignored.
func RestoreSysctl(t testing.TB, path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	sysctlMu.Lock()
	if sysctlUsers[path] == 0 {
		if err := updateSysctlState(path, true); err != nil {
			sysctlMu.Unlock()
			t.Fatalf("saving %s: %v", path, err)
		}
	}
	sysctlUsers[path]++
	sysctlMu.Unlock()
	t.Cleanup(func() {
		sysctlMu.Lock()
		defer sysctlMu.Unlock()
		if sysctlUsers[path]--; sysctlUsers[path] == 0 {
			if err := updateSysctlState(path, false); err != nil {
				t.Errorf("restoring %s: %v", path, err)
			}
		}
	})
}

// updateSysctlState adds this process to the users of path (saving its
// value if it is the first live one) or removes it (restoring the value if
// it was the last), under a lock shared by all test processes. The state
// file holds the original value, then one live user pid per line.
func updateSysctlState(path string, join bool) error {
	// The lock is on the state directory's parent, which is always there,
	// so that the state directory can go with its last file.
	lock, err := os.Open(filepath.Dir(sysctlState))
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if err := os.MkdirAll(sysctlState, 0o755); err != nil {
		return err
	}
	state := filepath.Join(sysctlState, strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", "."))
	// A state file whose users all died keeps its original: the value now
	// is what their pods left.
	var original string
	var pids []int
	if b, err := os.ReadFile(state); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		original = lines[0]
		for _, l := range lines[1:] {
			if pid, err := strconv.Atoi(l); err == nil && pid != os.Getpid() && Alive(pid) {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) == 0 {
		if !join {
			if original != "" {
				if err := os.WriteFile(path, []byte(original+"\n"), 0o644); err != nil {
					return err
				}
			}
			if err := os.Remove(state); err != nil && !os.IsNotExist(err) {
				return err
			}
			_ = os.Remove(sysctlState) // fails while another setting is saved
			return nil
		}
		if original == "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			original = strings.TrimSpace(string(b))
		}
	}
	if join {
		pids = append(pids, os.Getpid())
	}
	var b strings.Builder
	b.WriteString(original + "\n")
	for _, pid := range pids {
		fmt.Fprintf(&b, "%d\n", pid)
	}
	return os.WriteFile(state, []byte(b.String()), 0o644)
}
