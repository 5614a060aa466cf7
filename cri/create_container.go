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
// can without the image, one concern per check. The spec function checks
// the rest (users, capabilities, seccomp profiles, mount options) against
// the image and the node's files.
func validateCreateContainer(r *runtime.CreateContainerRequest, node Node) error {
	if r.GetPodSandboxId() == "" {
		return errdefs.InvalidArgument("pod_sandbox_id", "must not be empty")
	}
	cfg := r.GetConfig()
	if cfg == nil {
		return errdefs.InvalidArgument("config", "missing")
	}
	if err := checkConfigSize("config", cfg); err != nil {
		return err
	}
	for _, check := range []func(*runtime.ContainerConfig) error{
		validateContainerMetadata, validateContainerMaps, validateLogPath, validateMounts, validateDevices,
		validateProcess, validateContainerSecurity, validateCDIDevices,
	} {
		if err := check(cfg); err != nil {
			return err
		}
	}
	if err := validateResources("config.linux.resources", cfg.GetLinux().GetResources(), node); err != nil {
		return err
	}
	// Last, the catch-all: fields the checks above do not know.
	return checkStrings("config", cfg.ProtoReflect())
}

func validateContainerMetadata(cfg *runtime.ContainerConfig) error {
	if cfg.GetMetadata() == nil {
		return errdefs.InvalidArgument("config.metadata", "missing")
	}
	if err := checkName("config.metadata.name", cfg.GetMetadata().GetName()); err != nil {
		return err
	}
	if cfg.GetImage().GetImage() == "" {
		return errdefs.InvalidArgument("config.image.image", "must not be empty")
	}
	return nil
}

func validateContainerMaps(cfg *runtime.ContainerConfig) error {
	if err := checkLabels("config.labels", cfg.GetLabels()); err != nil {
		return err
	}
	return checkAnnotations("config.annotations", cfg.GetAnnotations())
}

// validateLogPath: the log is log_path under the pod's log_directory.
func validateLogPath(cfg *runtime.ContainerConfig) error {
	if lp := cfg.GetLogPath(); hasDotDot(lp) {
		return errdefs.InvalidArgument("config.log_path", "%q climbs out of the log directory", lp)
	}
	return nil
}

func validateMounts(cfg *runtime.ContainerConfig) error {
	for i, m := range cfg.GetMounts() {
		field := fmt.Sprintf("config.mounts[%d]", i)
		if err := checkContainerPath(field+".container_path", m.GetContainerPath()); err != nil {
			return err
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
	return nil
}

func validateDevices(cfg *runtime.ContainerConfig) error {
	for i, d := range cfg.GetDevices() {
		field := fmt.Sprintf("config.devices[%d]", i)
		if err := checkContainerPath(field+".container_path", d.GetContainerPath()); err != nil {
			return err
		}
		if !filepath.IsAbs(d.GetHostPath()) {
			return errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", d.GetHostPath())
		}
		if strings.Trim(d.GetPermissions(), "rwm") != "" {
			return errdefs.InvalidArgument(field+".permissions", "%q is not a combination of r, w and m", d.GetPermissions())
		}
	}
	return nil
}

// checkContainerPath: a path in the container is absolute and does not
// climb (Kubernetes refuses ".." in a mount path too).
func checkContainerPath(field, p string) error {
	switch {
	case !filepath.IsAbs(p):
		return errdefs.InvalidArgument(field, "%q is not an absolute path", p)
	case hasDotDot(p):
		return errdefs.InvalidArgument(field, "%q contains \"..\"", p)
	}
	return nil
}

func validateProcess(cfg *runtime.ContainerConfig) error {
	env := make([]string, len(cfg.GetEnvs()))
	for i, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") {
			return errdefs.InvalidArgument(fmt.Sprintf("config.envs[%d].key", i), "%q is empty or contains '='", kv.GetKey())
		}
		env[i] = kv.GetKey() + "=" + string(kv.GetValue())
	}
	return checkExecStrings("config", cfg.GetCommand(), cfg.GetArgs(), env)
}

// validateCDIDevices: the CDI devices asked for by config.CDI_devices and
// cdi.k8s.io/ annotations have qualified names (vendor.com/class=name).
// Whether the node defines them is CheckCDI's question, asked before
// anything is created.
func validateCDIDevices(cfg *runtime.ContainerConfig) error {
	_, err := container.CDIDevices(cfg)
	return err
}

func validateContainerSecurity(cfg *runtime.ContainerConfig) error {
	sc := cfg.GetLinux().GetSecurityContext()
	return checkSupplementalGroups("config.linux.security_context.supplemental_groups", sc.GetSupplementalGroups())
}

// CreateContainer creates a new container in specified PodSandbox. The
// pod must be ready (FailedPrecondition), the name unique in it
// (AlreadyExists names the holder), and the image present (NotFound).
func (s *Server) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	if err := validateCreateContainer(r, s.opts.Node); err != nil {
		return nil, err
	}
	if err := s.containers.CheckCDI(r.GetConfig()); err != nil {
		return nil, err
	}
	cgwarm.Warm() // the container's init will be placed in its cgroups
	id, err := s.containers.Create(ctx, r.GetPodSandboxId(), r.GetConfig())
	if err != nil {
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}
