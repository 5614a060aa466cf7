package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/internal/cgwarm"
	"github.com/huskrt/husk/internal/errdefs"
)

// validateCreateContainer checks a CreateContainer request as far as it
// can without the node. The spec function checks the rest (users,
// capabilities, seccomp profiles, mount options) against the image.
func validateCreateContainer(r *runtime.CreateContainerRequest) error {
	if r.GetPodSandboxId() == "" {
		return errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	cfg := r.GetConfig()
	if cfg == nil {
		return errdefs.InvalidArgument("config", "missing")
	}
	if cfg.GetMetadata() == nil {
		return errdefs.InvalidArgument("config.metadata", "missing")
	}
	if n := cfg.GetMetadata().GetName(); n == "" || strings.ContainsAny(n, "/\x00") {
		return errdefs.InvalidArgument("config.metadata.name", "%q is empty or contains '/'", n)
	}
	if cfg.GetImage().GetImage() == "" {
		return errdefs.InvalidArgument("config.image.image", "must not be empty")
	}
	if lp := cfg.GetLogPath(); lp != "" {
		for _, el := range strings.Split(lp, "/") {
			if el == ".." {
				return errdefs.InvalidArgument("config.log_path", "%q climbs out of the log directory", lp)
			}
		}
	}
	for i, m := range cfg.GetMounts() {
		field := fmt.Sprintf("config.mounts[%d]", i)
		if !filepath.IsAbs(m.GetContainerPath()) {
			return errdefs.InvalidArgument(field+".container_path", "%q is not an absolute path", m.GetContainerPath())
		}
		if m.GetImage().GetImage() == "" && !filepath.IsAbs(m.GetHostPath()) {
			return errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", m.GetHostPath())
		}
		if m.GetImage().GetImage() != "" {
			if err := container.CheckImageMount(i, m); err != nil {
				return err
			}
		}
	}
	for i, d := range cfg.GetDevices() {
		field := fmt.Sprintf("config.devices[%d]", i)
		if !filepath.IsAbs(d.GetContainerPath()) {
			return errdefs.InvalidArgument(field+".container_path", "%q is not an absolute path", d.GetContainerPath())
		}
		if !filepath.IsAbs(d.GetHostPath()) {
			return errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", d.GetHostPath())
		}
		if strings.Trim(d.GetPermissions(), "rwm") != "" {
			return errdefs.InvalidArgument(field+".permissions", "%q is not a combination of r, w and m", d.GetPermissions())
		}
	}
	for i, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") {
			return errdefs.InvalidArgument(fmt.Sprintf("config.envs[%d].key", i), "%q is empty or contains '='", kv.GetKey())
		}
	}
	return nil
}

// CreateContainer creates a new container in specified PodSandbox. The
// pod must be ready (FailedPrecondition), the name unique in it
// (AlreadyExists names the holder), and the image present (NotFound).
func (s *Server) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	if err := validateCreateContainer(r); err != nil {
		return nil, err
	}
	cgwarm.Warm() // the container's init will be placed in its cgroups
	id, err := s.containers.Create(ctx, r.GetPodSandboxId(), r.GetConfig())
	if err != nil {
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}
