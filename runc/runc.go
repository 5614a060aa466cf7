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
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Result is what `husk-runc run` writes, as JSON, on descriptor 3.
type Result struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// ResultFD is the descriptor a caller passes for Result.
const ResultFD = 3

// Run creates container id under root from the OCI spec in specPath, starts
// its process and returns its pid. The process's stdio is /dev/null unless
// the caller handed descriptors 0-2 in and inherit is set. On error nothing
// is left: no state directory, cgroup or process.
func Run(root, id, specPath string, inherit bool) (_ int, retErr error) {
	spec, err := readSpec(specPath)
	if err != nil {
		return 0, err
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
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
	if inherit {
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if err := c.Run(p); err != nil {
		return 0, fmt.Errorf("starting container: %w", err)
	}
	return p.Pid()
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
