// Package runc is the body of husk-runc: husk's front to libcontainer, in
// the shape of the runc command line. Each operation runs in its own
// short-lived process started by the pod's husk-shim, and exits when done,
// as `runc run --detach` does under conmon: the container's processes are
// then re-parented to the shim, a child subreaper.
//
// Keeping libcontainer out of the long-lived shim is what keeps the shim
// small: libcontainer's decoded specs, state and JSON type caches cost a Go
// process about a megabyte of heap that it never gives back.
package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/huskrt/husk/internal/cgroup"
)

// IO says what a container's process gets as stdio.
type IO struct {
	// Inherit gives the process this process's descriptors 0-2 (the
	// shim's pipes); otherwise they are /dev/null.
	Inherit bool
	// Console, when set, is a unix socket on which libcontainer sends the
	// master of the container's new pseudo-terminal.
	Console *os.File
}

// Run creates container id under root from the OCI spec in specPath,
// starts its process and returns its pid. On error nothing is left: no
// state directory, cgroup or process.
func Run(root, id, specPath string, stdio IO) (int, error) {
	return create(root, id, specPath, stdio, true)
}

// Create creates container id and starts its init, which then waits (on
// libcontainer's exec fifo) for Start before it runs the user's process:
// the CRI's CreateContainer and StartContainer, as runc create and runc
// start do.
func Create(root, id, specPath string, stdio IO) (int, error) {
	return create(root, id, specPath, stdio, false)
}

func create(root, id, specPath string, stdio IO, run bool) (_ int, retErr error) {
	spec, err := readSpec(specPath)
	if err != nil {
		return 0, err
	}
	// specconv resolves relative paths against the working directory, as
	// runc does against the bundle.
	if err := os.Chdir(filepath.Dir(specPath)); err != nil {
		return 0, err
	}
	// A cgroups path in the systemd form (slice:cri-husk:id) asks for a
	// scope from systemd (huskd's systemd cgroup driver); runc is told so
	// by a flag, husk by the path's form (see internal/cgroup).
	var systemd bool
	if spec.Linux != nil {
		systemd = cgroup.IsSystemdSpecPath(spec.Linux.CgroupsPath)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec, UseSystemdCgroup: systemd})
	if err != nil {
		return 0, fmt.Errorf("converting the spec: %w", err)
	}
	c, err := libcontainer.Create(root, id, cfg)
	if err != nil {
		return 0, fmt.Errorf("creating container: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = c.Signal(unix.SIGKILL)
			_ = c.Destroy()
		}
	}()
	p := newProcess(spec.Process)
	p.Init = true
	if stdio.Console != nil {
		p.ConsoleSocket = stdio.Console
		if spec.Process.ConsoleSize != nil {
			p.ConsoleWidth, p.ConsoleHeight = uint16(spec.Process.ConsoleSize.Width), uint16(spec.Process.ConsoleSize.Height)
		}
	} else if stdio.Inherit {
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if run {
		err = c.Run(p)
	} else {
		err = c.Start(p)
	}
	if err != nil {
		return 0, fmt.Errorf("starting container: %w", err)
	}
	return p.Pid()
}

// Exec starts args in running container id with the user, environment,
// working directory and security settings of the container's own process
// (from its OCI spec at specPath; capabilities, seccomp, AppArmor and
// rlimits come from the container's libcontainer config), and returns its
// pid without waiting: the process is re-parented to the shim when this
// one exits, as `runc exec --detach` leaves it.
func Exec(root, id, specPath string, args []string, stdio IO, width, height uint16) (int, error) {
	spec, err := readSpec(specPath)
	if err != nil {
		return 0, err
	}
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return 0, err
	}
	p := newProcess(spec.Process)
	p.Args = args
	if stdio.Console != nil {
		p.ConsoleSocket = stdio.Console
		p.ConsoleWidth, p.ConsoleHeight = width, height
	} else if stdio.Inherit {
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if err := c.Run(p); err != nil {
		return 0, err // the shim and huskd say which container
	}
	return p.Pid()
}

// Start lets a created container's init run the user's process.
func Start(root, id string) error {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return err
	}
	return c.Exec()
}

// Kill sends sig to the container's init; SIGKILL goes to every process in
// its cgroup when the container shares a PID namespace (libcontainer's
// rule: only a namespace's init takes its processes with it).
func Kill(root, id string, sig unix.Signal) error {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return err
	}
	err = c.Signal(sig)
	if errors.Is(err, libcontainer.ErrNotRunning) {
		return nil
	}
	return err
}

// Update applies new cgroup resources (an OCI LinuxResources in JSON) to a
// running container.
func Update(root, id string, resourcesJSON []byte) error {
	var res specs.LinuxResources
	if err := json.Unmarshal(resourcesJSON, &res); err != nil {
		return fmt.Errorf("parsing resources: %w", err)
	}
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return err
	}
	cfg := c.Config()
	old := cfg.Cgroups.Resources
	cfg.Cgroups = withResources(cfg.Cgroups, *old)
	// specconv turns OCI resources into libcontainer's; only the fields the
	// CRI can change are taken from it.
	fresh, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{
		CgroupName: id,
		Spec:       &specs.Spec{Linux: &specs.Linux{CgroupsPath: cfg.Cgroups.Path, Resources: &res}},
	}, nil)
	if err != nil {
		return err
	}
	r, n := cfg.Cgroups.Resources, fresh.Resources
	// CpuWeight is v2's form of the shares (specconv converts them).
	r.CpuShares, r.CpuWeight, r.CpuQuota, r.CpuPeriod = n.CpuShares, n.CpuWeight, n.CpuQuota, n.CpuPeriod
	r.CpusetCpus, r.CpusetMems = n.CpusetCpus, n.CpusetMems
	r.Memory, r.MemorySwap = n.Memory, n.MemorySwap
	r.HugetlbLimit, r.Unified = n.HugetlbLimit, n.Unified
	if n.PidsLimit != nil {
		r.PidsLimit = n.PidsLimit
	}
	err = c.Set(cfg)
	if err == nil {
		return nil
	}
	// libcontainer writes its old limits back after a failed Set, but a
	// limit the container never had reads as "leave as is" there: a memory
	// limit written before the cpu write failed would stay. Write the
	// kernel's "no limit" in those.
	cfg.Cgroups = withResources(cfg.Cgroups, *cgroup.Undo(old, r))
	if uerr := c.Set(cfg); uerr != nil {
		return fmt.Errorf("%w (writing the old limits back failed too: %v)", err, uerr)
	}
	return err
}

// withResources is a copy of cg with r: Config is a shallow copy, so
// changes to its cgroup would change libcontainer's record of the old
// limits too.
func withResources(cg *cgroups.Cgroup, r cgroups.Resources) *cgroups.Cgroup {
	c := *cg
	c.Resources = &r
	return &c
}

// Delete kills every process of container id (when force is set) and
// removes its cgroup and state. A container that does not exist is fine.
func Delete(root, id string, force bool, timeout time.Duration) error {
	c, err := libcontainer.Load(root, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st != libcontainer.Stopped {
		if !force {
			return fmt.Errorf("container %s is %s; not deleting it without force", id, st)
		}
		if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("killing container %s: %w", id, err)
		}
		deadline := time.Now().Add(timeout)
		for {
			if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("container %s still runs %s after SIGKILL", id, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return c.Destroy()
}

func readSpec(path string) (*specs.Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("%s: no process", path)
	}
	return &spec, nil
}

// newProcess is the process part of an OCI spec in libcontainer's terms
// (runc does the same in its utils_linux.go; libcontainer does not export it).
func newProcess(p *specs.Process) *libcontainer.Process {
	lp := &libcontainer.Process{
		Args:            p.Args,
		Env:             p.Env,
		UID:             int(p.User.UID),
		GID:             int(p.User.GID),
		Cwd:             p.Cwd,
		NoNewPrivileges: &p.NoNewPrivileges,
	}
	for _, g := range p.User.AdditionalGids {
		lp.AdditionalGroups = append(lp.AdditionalGroups, int(g))
	}
	return lp
}
