package huskdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodConfig returns a pod config as kubelet would send it, with name used
// for the metadata name and UID, and its own cgroup parent under husktest/.
func PodConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{
			Name: name, Namespace: "husktest", Uid: "uid-" + name, Attempt: 0,
		},
		Hostname:     name,
		LogDirectory: "/tmp",
		Labels:       map[string]string{"app": name, "husk.test": "yes"},
		Annotations:  map[string]string{"note": "created by a husk test"},
		Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{},
			},
		},
	}
}

// Info is the verbose "info" of PodSandboxStatus.
type Info struct {
	Pid        int               `json:"pid"`
	ShimPid    int               `json:"shimPid"`
	State      string            `json:"state"`
	Reason     string            `json:"reason"`
	CgroupPath string            `json:"cgroupPath"`
	Namespaces map[string]string `json:"namespaces"`
	ShmPath    string            `json:"shmPath"`
}

// PodInfo returns a pod's status and its verbose info.
func (h *Huskd) PodInfo(id string) (*runtime.PodSandboxStatus, Info) {
	h.t.Helper()
	resp, err := h.Runtime.PodSandboxStatus(context.Background(), id, true)
	if err != nil {
		h.t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	var info Info
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		h.t.Fatalf("verbose info of %s: %v (%q)", id, err, resp.GetInfo())
	}
	return resp.GetStatus(), info
}

// RunPod runs a pod and fails the test on error.
func (h *Huskd) RunPod(cfg *runtime.PodSandboxConfig) string {
	h.t.Helper()
	id, err := h.Runtime.RunPodSandbox(context.Background(), cfg, "")
	if err != nil {
		h.t.Fatalf("RunPodSandbox %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

// NS returns the namespace of kind ("net", "pid", ...) a process is in,
// as "net:[4026531840]".
func NS(t testing.TB, pid int, kind string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		t.Fatalf("namespace %s of %d: %v", kind, pid, err)
	}
	return l
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("after %s: %s", timeout, what)
	}
}

// Until is Eventually for a goroutine other than the test's (which must
// not call t.Fatal): it reports whether cond came true within timeout.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Alive reports whether pid exists, is not a zombie and is not exiting.
// A process that is exiting has let go of its memory and cgroup already;
// a pid namespace's init can stay so for long, waiting in the kernel for
// the namespace's zombies to be reaped: a container's process whose shim
// was killed is reparented to the machine's PID 1, which here does not
// reap them.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	// After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
	f := strings.Fields(s[i+1:])
	if len(f) < 7 || f[0] == "Z" {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&pfExiting == 0
}

// pfExiting is the kernel's PF_EXITING task flag (include/linux/sched.h).
const pfExiting = 0x4

// CgroupDirs returns the directories of cgroup path p in every mounted
// hierarchy that has it.
func CgroupDirs(p string) []string {
	var out []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		d := filepath.Join(h, p)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// CgroupParent returns a fresh cgroup parent for the test's pods and
// removes it once huskd's cleanup has removed the pods under it (husk
// removes pod cgroups, not their parent, which is kubelet's on a node).
func (h *Huskd) CgroupParent() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	p := "/husktest-" + hex.EncodeToString(b)
	h.afterCleanup = append(h.afterCleanup, func() {
		RemoveCgroup(p)
		if left := CgroupDirs(p); len(left) > 0 {
			h.t.Errorf("cgroup parent %s left: %v", p, left)
		}
	})
	return p
}

// RemoveCgroup removes cgroup path p from every hierarchy, for parents a
// test created.
func RemoveCgroup(p string) {
	for _, d := range CgroupDirs(p) {
		_ = os.Remove(d)
	}
}

// PrivateDirtyKiB returns Private_Dirty of a process from smaps_rollup.
func PrivateDirtyKiB(pid int) (int, error) {
	return SmapsKiB(pid, "Private_Dirty:")
}

// PssKiB returns Pss of a process from smaps_rollup.
func PssKiB(pid int) (int, error) {
	return SmapsKiB(pid, "Pss:")
}

// RssKiB returns Rss of a process from smaps_rollup.
func RssKiB(pid int) (int, error) {
	return SmapsKiB(pid, "Rss:")
}

// SmapsKiB returns a field of a process's smaps_rollup ("Private_Clean:").
func SmapsKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			var kib int
			_, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field)), "%d kB", &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no %s in smaps_rollup of %d", field, pid)
}

// FreePort returns a TCP port nobody listens on now on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
