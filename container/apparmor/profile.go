// Package apparmor owns husk's default AppArmor profile: the policy text
// (a pure function of what the node's parser understands) and its loading
// into the kernel with apparmor_parser.
//
// The profile confines what a container's processes may do beyond their
// capabilities and seccomp filter: no mounts, no writes to the kernel's
// tunables in /proc and /sys outside the container's own, no reads of
// kernel memory or firmware, and signals and ptrace only among processes
// confined by the same profile (and from the host, which is unconfined).
// It is the policy Docker and containerd apply by default, written for
// husk.
package apparmor

import (
	"fmt"
	"strings"
)

// DefaultProfile is the name of husk's default profile: what
// RuntimeDefault and an unset profile mean on a node with AppArmor.
const DefaultProfile = "husk-default"

// Params are what the profile text depends on.
type Params struct {
	// Name is the profile's name, DefaultProfile unless a test says
	// otherwise.
	Name string
	// ABI3 pins the policy to AppArmor 3.0's rule classes (parser 3.0 or
	// newer). Without a pinned ABI a 3.x parser guesses one from the
	// running kernel and warns; a 2.x parser does not know the keyword.
	ABI3 bool
}

// deniedProcWrites are the files of /proc, outside a process's own
// /proc/<pid>, that change the host's kernel: a container sees the host's
// tunables through its /proc. Of /proc/sys/kernel only the shared memory
// limits (shm*) stay writable, as in Docker's profile: they are namespaced,
// and programs that size their own segments write them.
var deniedProcWrites = []string{
	// Files directly in /proc: sysrq-trigger, kmsg, ...
	"/proc/* w",
	// Directories of /proc that are not a process's (a name that is not a
	// number) nor sys: fs, irq, bus, driver, sysvipc, ...
	"/proc/{[^1-9s]*,s[^y]*,sy[^s]*,sys?*,[1-9]*[^0-9/]*}/** w",
	// /proc/sys but its kernel branch, the only one whose name starts with k.
	"/proc/sys/[^k]** w",
	// /proc/sys/kernel but shm*.
	"/proc/sys/kernel/{[^s]*,s,s[^h]*,sh,sh[^m]*}{,/**} w",
}

// deniedProcAll are files of /proc no container may use at all: the
// kernel's memory image and the magic SysRq trigger.
var deniedProcAll = []string{
	"/proc/sysrq-trigger rwklx",
	"/proc/kcore rwklx",
}

// deniedSys are the parts of /sys a container may not change (all of it
// but the cgroup tree, which the container's own cgroup namespace and
// mount options govern) or read (firmware tables, the power capping
// counters that leak energy use across tenants, and the LSMs' own
// interfaces).
var deniedSys = []string{
	"/sys/[^f]*/** wklx",
	"/sys/f[^s]*/** wklx",
	"/sys/fs/[^c]*/** wklx",
	"/sys/fs/c[^g]*/** wklx",
	"/sys/fs/cg[^r]*/** wklx",
	"/sys/firmware/** rwklx",
	"/sys/devices/virtual/powercap/** rwklx",
	"/sys/kernel/security/** rwklx",
}

// Generate returns the profile's policy text. It includes nothing from
// /etc/apparmor.d, so it parses the same on every node whatever the
// distribution ships there.
func Generate(p Params) string {
	name := p.Name
	if name == "" {
		name = DefaultProfile
	}
	var b strings.Builder
	b.WriteString("# husk's default AppArmor profile, generated and loaded by huskd.\n")
	if p.ABI3 {
		b.WriteString("abi <abi/3.0>,\n")
	}
	// attach_disconnected: a container's paths are relative to its own
	// root, which the host's namespace cannot name; mediate_deleted: rules
	// still apply to files unlinked while open.
	fmt.Fprintf(&b, "\nprofile %s flags=(attach_disconnected,mediate_deleted) {\n", name)
	// What capabilities, seccomp and file permissions already govern.
	for _, r := range []string{"file,", "network,", "capability,", "unix,", "umount,"} {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	b.WriteString("\n  # Mounting would let a process with CAP_SYS_ADMIN remount what the runtime made read-only.\n")
	b.WriteString("  deny mount,\n")
	b.WriteString("  deny pivot_root,\n")
	b.WriteString("\n  # The shim and the host (unconfined) stop and kill; the pod's own processes signal each other.\n")
	b.WriteString("  signal (receive) peer=unconfined,\n")
	fmt.Fprintf(&b, "  signal (send,receive) peer=%s,\n", name)
	b.WriteString("\n  # ps and debuggers inside the pod, nothing outside it.\n")
	fmt.Fprintf(&b, "  ptrace (trace,read,tracedby,readby) peer=%s,\n", name)
	b.WriteString("\n")
	for _, r := range deniedProcWrites {
		fmt.Fprintf(&b, "  deny %s,\n", r)
	}
	for _, r := range deniedProcAll {
		fmt.Fprintf(&b, "  deny %s,\n", r)
	}
	for _, r := range deniedSys {
		fmt.Fprintf(&b, "  deny %s,\n", r)
	}
	b.WriteString("}\n")
	return b.String()
}
