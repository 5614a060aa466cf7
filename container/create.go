package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/container/apparmor"
	"github.com/huskrt/husk/image/layer"
	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/internal/faults"
	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/internal/metrics"
	"github.com/huskrt/husk/internal/undo"
	"github.com/huskrt/husk/sandbox"
	"github.com/huskrt/husk/shim/shimapi"
)

// Create creates a container in a Ready pod from a validated config and
// returns its ID. A retry of a call still running gets that call's
// container.
func (m *Manager) Create(ctx context.Context, podID string, cfg *runtime.ContainerConfig) (string, error) {
	sb, err := m.sandboxes.Get(podID)
	if err != nil {
		return "", err
	}
	if sb.State != sandbox.StateReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready (%s)", sb.ID, sb.Reason)
	}
	name := ContainerName(cfg.GetMetadata(), sb.Metadata())
	id := ids.New()
	return m.names.Create(ctx, name, id, func() error {
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CreateTimeout)
		defer cancel()
		return m.create(work, id, name, sb, cfg)
	})
}

func (m *Manager) create(ctx context.Context, id, name string, sb *sandbox.Sandbox, cfg *runtime.ContainerConfig) (retErr error) {
	start := time.Now()
	defer metrics.Since(metrics.ContainerOperationDuration.WithLabelValues(metrics.OpCreate), start)
	img, err := m.images.Resolve(cfg.GetImage().GetImage())
	if err != nil {
		return fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), err)
	}
	var u undo.Stack
	dir := m.dir(id)
	bundle := bundleDir(m.sandboxes, sb.ID, id)
	defer func() {
		if retErr == nil {
			return
		}
		if uerr := u.Run(ctx, "CreateContainer", "podSandboxID", sb.ID, "containerID", id); uerr != nil {
			retErr = m.keepFailed(failedCreate{id: id, name: name, sb: sb, cfg: cfg, imageID: img.ID, start: start, dir: dir, bundle: bundle}, retErr, uerr)
		}
	}()

	layers, err := m.images.Lease(id, img.ID)
	if err != nil {
		return err
	}
	u.AddRecord(func(context.Context) error { return m.images.Release(id) })
	faults.Point("CreateContainer/after-lease")
	imgCfg, err := m.imageConfig(img.ID)
	if err != nil {
		return err
	}
	users := readUserDB(layers)

	rootfs := filepath.Join(bundle, "rootfs")
	u.AddRecord(func(context.Context) error { return os.RemoveAll(dir) })
	u.AddRecord(func(context.Context) error { return os.RemoveAll(bundle) })
	if err := makeContainerDirs(sb, dir, bundle); err != nil {
		return err
	}
	uidMaps, gidMaps := podMappings(sb)
	if err := mountRootfs(layers, dir, bundle, rootfs, sb.Namespaces[sandbox.NSUser], uidMaps, gidMaps); err != nil {
		return err
	}
	u.Add(func(context.Context) error { return layer.Unmount(rootfs) })
	faults.Point("CreateContainer/after-rootfs")

	imageVolumes, volumeIDs := map[int]string{}, map[int]string{}
	for i, mnt := range cfg.GetMounts() {
		if mnt.GetImage().GetImage() == "" {
			continue
		}
		p, volID, err := m.mountImageVolume(id, bundle, i, mnt, &u)
		if err != nil {
			return err
		}
		imageVolumes[i], volumeIDs[i] = p, volID
	}
	faults.Point("CreateContainer/after-image-volume")

	targetPID := 0
	if opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); opts.GetPid() == runtime.NamespaceMode_TARGET {
		t, err := m.Get(opts.GetTargetId())
		if err != nil || t.PodID != sb.ID {
			return errdefs.NotFound("target container %q of the PID namespace not found in pod %s", opts.GetTargetId(), sb.ID)
		}
		if t.State.Status != shimapi.StatusRunning {
			return errdefs.FailedPrecondition("target container %s of the PID namespace is not running", t.ID)
		}
		targetPID = t.State.PID
	}

	spec, user, err := Spec(SpecInput{
		ID: id, Config: cfg, Image: imgCfg, ImageID: img.ID,
		Sandbox: SandboxInfo{
			ID: sb.ID, Namespaces: sb.Namespaces, PausePID: sb.PausePID,
			UIDMappings: uidMaps, GIDMappings: gidMaps,
			Options:      sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			Cgroup:       sb.ContainerCgroup(id),
			HostnamePath: m.sandboxes.PodFile(sb.ID, "hostname"),
			HostsPath:    m.sandboxes.PodFile(sb.ID, "hosts"),
			ResolvPath:   m.sandboxes.PodFile(sb.ID, "resolv.conf"),
			ShmPath:      sb.ShmPath,
		},
		Node: m.cfg.Node, Rootfs: rootfs, ImageVolumes: imageVolumes, TargetPID: targetPID, Users: users,
	})
	if err != nil {
		return err
	}
	// CDI edits go last, over the CRI's own devices, mounts and env, as
	// containerd and CRI-O apply them: a device's spec file may replace a
	// mount or device node at the same container path. The CRI server's
	// CheckCDI has just read the spec files again.
	cdiDevs, err := CDIDevices(cfg)
	if err != nil {
		return err
	}
	if err := m.cfg.CDI.Inject(spec, cdiDevs); err != nil {
		return err
	}
	logPath := ""
	if lp := cfg.GetLogPath(); lp != "" {
		logPath = lp
		if !filepath.IsAbs(lp) {
			if d := sb.Config.GetLogDirectory(); d != "" {
				logPath = filepath.Join(d, lp)
			} else {
				logPath = ""
			}
		}
	}
	c := &Container{
		ID: id, PodID: sb.ID, Name: name, Config: cfg, ImageID: img.ID, CreatedAt: start, LogPath: logPath,
		Bundle: bundle, CgroupPath: sb.ContainerCgroup(id), User: user,
		Resources:    cfg.GetLinux().GetResources(),
		StopSignal:   stopSignal(cfg, imgCfg),
		ImageVolumes: volumeIDs,
	}
	// NRI plugins last, over CDI, as containerd does: they see the spec
	// whole and may refuse it. A plugin that registers meanwhile waits
	// until the container is listed (BlockSync); every plugin hears of a
	// container rolled back, whichever refused it.
	unblock := m.cfg.NRI.BlockSync()
	defer unblock()
	if m.cfg.NRI != nil {
		pod := sb.NRI()
		u.Add(func(ctx context.Context) error {
			m.cfg.NRI.StopContainer(ctx, pod, c.nri())
			m.cfg.NRI.RemoveContainer(ctx, pod, c.nri())
			return nil
		})
		if err := m.cfg.NRI.CreateContainer(ctx, pod, nriCreate(c, spec), spec); err != nil {
			return err
		}
	}
	if spec.Process.ApparmorProfile == apparmor.DefaultProfile && m.cfg.AppArmor != nil {
		if err := m.cfg.AppArmor.EnsureDefault(ctx); err != nil {
			return errdefs.FailedPrecondition("loading the default AppArmor profile %s: %v", apparmor.DefaultProfile, err)
		}
	}
	for _, mnt := range cfg.GetMounts() {
		// kubelet creates its volumes; a missing host path becomes a
		// directory, as containerd and Docker do.
		if hp := mnt.GetHostPath(); hp != "" && mnt.GetImage().GetImage() == "" {
			if _, err := os.Lstat(hp); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(hp, 0o755); err != nil {
					return fmt.Errorf("creating host path %s: %w", hp, err)
				}
			}
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return err
	}
	faults.Point("CreateContainer/after-bundle")

	var st shimapi.ContainerState
	err = m.sandboxes.WithShim(sb.ID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
		var err error
		st, err = sc.CreateContainer(ctx, shimapi.CreateContainerArgs{
			ID: id, Bundle: bundle, LogPath: logPath,
			Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), TTY: cfg.GetTty(),
			CgroupPath: c.CgroupPath, OOMFile: OOMFile(c.CgroupPath),
		})
		if err != nil {
			return err
		}
		u.Add(func(ctx context.Context) error {
			return m.sandboxes.WithShim(sb.ID, func(_ *sandbox.Sandbox, sc *shimapi.Client) error {
				return sc.RemoveContainer(ctx, id)
			})
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating container %s: %w", id, err)
	}
	faults.Point("CreateContainer/after-shim-create")
	c.State = st
	if err := writeRecord(dir, c); err != nil {
		return err
	}
	faults.Point("CreateContainer/after-record")
	e := m.newEntry(c)
	m.mu.Lock()
	m.ctrs[id] = e
	m.mu.Unlock()
	unblock()
	m.event(e, EventCreated)
	m.cfg.NRI.PostCreateContainer(ctx, sb.NRI(), c.nri())
	klog.InfoS("Container created", "podSandboxID", sb.ID, "containerID", id, "container", cfg.GetMetadata().GetName(),
		"image", img.ID, "duration", time.Since(start))
	return nil
}

// imageConfig reads the run configuration of an image.
func (m *Manager) imageConfig(imageID string) (ImageConfig, error) {
	b, err := m.images.ReadBlob(imageID)
	if err != nil {
		return ImageConfig{}, err
	}
	cf, err := v1.ParseConfigFile(strings.NewReader(string(b)))
	if err != nil {
		return ImageConfig{}, fmt.Errorf("image %s config: %w", imageID, err)
	}
	c := cf.Config
	return ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, StopSignal: c.StopSignal}, nil
}

// readUserDB answers from the image's /etc/passwd and /etc/group, scanned
// as questions come; an image without them has no named users.
func readUserDB(layers []string) UserDB {
	return ImageUserDB(layers)
}

// stopSignal is the CRI stop_signal, else the image's STOPSIGNAL, else
// SIGTERM.
func stopSignal(cfg *runtime.ContainerConfig, img ImageConfig) string {
	if s := cfg.GetStopSignal(); s != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(s.String(), "SIGNAL_")
	}
	if img.StopSignal != "" {
		return img.StopSignal
	}
	return "SIGTERM"
}
