package container

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/huskrt/husk/internal/errdefs"
)

// CDI resolves Container Device Interface devices (vendor.com/class=name)
// from the spec files of the node's CDI directories, which device plugins
// and DRA drivers write. A nil *CDI is CDI switched off ([cdi] enabled =
// false): a container that asks for a device then fails.
type CDI struct {
	cache *cdi.Cache
}

// NewCDI returns a resolver over dirs, earlier ones of lower priority (the
// library's rule: a device defined twice is taken from the later dir).
// Missing dirs are fine: device plugins create them when they come.
func NewCDI(dirs []string) *CDI {
	// Manual refresh, once per container that asks for devices: a device
	// plugin writes its spec file just before kubelet's CreateContainer,
	// and a file watcher could see it only after.
	c, _ := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false)) // its error is always nil
	return &CDI{cache: c}
}

// CDIDevices returns the CDI devices a container asks for, each once:
// config.CDI_devices in their order (kubelet fills them from DRA and device
// plugins), then the values of its cdi.k8s.io/ annotations (device plugins'
// older way), by key. A name that is not vendor.com/class=name is
// InvalidArgument naming the field. Nil when none are asked for.
func CDIDevices(cfg *runtime.ContainerConfig) ([]string, error) {
	var devs []string
	seen := map[string]bool{}
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			devs = append(devs, d)
		}
	}
	for i, d := range cfg.GetCDIDevices() {
		if _, _, _, err := parser.ParseQualifiedName(d.GetName()); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("config.CDI_devices[%d].name", i), "%v", err)
		}
		add(d.GetName())
	}
	var keys []string
	for k := range cfg.GetAnnotations() {
		if strings.HasPrefix(k, cdi.AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, d := range strings.Split(cfg.GetAnnotations()[k], ",") {
			if _, _, _, err := parser.ParseQualifiedName(d); err != nil {
				return nil, errdefs.InvalidArgument(fmt.Sprintf("config.annotations[%q]", k), "%v", err)
			}
			add(d)
		}
	}
	return devs, nil
}

// Check refreshes the cache from the spec files and says whether every
// device in devs is defined: InvalidArgument naming the unknown ones, or
// FailedPrecondition when CDI is off. A broken spec file does not stop
// the devices of other files; it is logged.
func (c *CDI) Check(devs []string) error {
	if len(devs) == 0 {
		return nil
	}
	if c == nil {
		return errdefs.FailedPrecondition("CDI devices %s requested but CDI is disabled on this node ([cdi] enabled = false)", strings.Join(devs, ", "))
	}
	if err := c.cache.Refresh(); err != nil {
		klog.ErrorS(err, "Reading CDI spec files; the devices they define are unavailable", "dirs", c.cache.GetSpecDirectories())
	}
	var unknown []string
	for _, d := range devs {
		if c.cache.GetDevice(d) == nil {
			unknown = append(unknown, d)
		}
	}
	if len(unknown) > 0 {
		return errdefs.InvalidArgument("config (CDI_devices, cdi.k8s.io/ annotations)", "unknown CDI device(s) %s (not defined by any spec file in %s)",
			strings.Join(unknown, ", "), strings.Join(c.cache.GetSpecDirectories(), ", "))
	}
	return nil
}

// Inject edits the devices' device nodes, device cgroup rules, env,
// mounts and hooks into spec, from the cache as the last Check left it.
// A device removed since is InvalidArgument, as in Check.
func (c *CDI) Inject(spec *specs.Spec, devs []string) error {
	if len(devs) == 0 {
		return nil
	}
	if c == nil {
		return c.Check(devs)
	}
	unresolved, err := c.cache.InjectDevices(spec, devs...)
	if len(unresolved) > 0 {
		return errdefs.InvalidArgument("config (CDI_devices, cdi.k8s.io/ annotations)", "unknown CDI device(s) %s", strings.Join(unresolved, ", "))
	}
	if err != nil {
		// A spec file whose edits cannot be applied (a host device node
		// gone, a bad hook name) is the node's fault, not the request's.
		return errdefs.FailedPrecondition("injecting CDI devices %s: %v", strings.Join(devs, ", "), err)
	}
	return nil
}

// CheckCDI says whether every CDI device cfg asks for can be injected
// (see CDIDevices and CDI.Check); the CRI server calls it before Create
// so that an unknown device leaves nothing behind.
func (m *Manager) CheckCDI(cfg *runtime.ContainerConfig) error {
	devs, err := CDIDevices(cfg)
	if err != nil {
		return err
	}
	return m.cfg.CDI.Check(devs)
}
