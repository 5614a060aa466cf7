package container

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

func TestCDIDevices(t *testing.T) {
	cdiDevs := func(names ...string) []*runtime.CDIDevice {
		var ds []*runtime.CDIDevice
		for _, n := range names {
			ds = append(ds, &runtime.CDIDevice{Name: n})
		}
		return ds
	}
	cases := []struct {
		name   string
		cfg    *runtime.ContainerConfig
		want   []string
		errHas string
	}{
		{name: "none", cfg: &runtime.ContainerConfig{Annotations: map[string]string{"other": "x"}}},
		{name: "field in order", cfg: &runtime.ContainerConfig{CDIDevices: cdiDevs("b.com/gpu=1", "a.com/gpu=0")},
			want: []string{"b.com/gpu=1", "a.com/gpu=0"}},
		{name: "field then annotations by key, each once", cfg: &runtime.ContainerConfig{
			CDIDevices: cdiDevs("a.com/gpu=0", "a.com/gpu=0"),
			Annotations: map[string]string{
				"cdi.k8s.io/z":                 "c.com/x=1",
				"cdi.k8s.io/a":                 "a.com/gpu=0,b.com/nic=eth1",
				"io.kubernetes.container.hash": "a.com/gpu=9",
			}},
			want: []string{"a.com/gpu=0", "b.com/nic=eth1", "c.com/x=1"}},
		{name: "unqualified field name", cfg: &runtime.ContainerConfig{CDIDevices: cdiDevs("a.com/gpu=0", "gpu0")},
			errHas: "config.CDI_devices[1].name"},
		{name: "unqualified annotation value", cfg: &runtime.ContainerConfig{Annotations: map[string]string{"cdi.k8s.io/p": "a.com/gpu=0,"}},
			errHas: `config.annotations["cdi.k8s.io/p"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := CDIDevices(c.cfg)
			if c.errHas != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want InvalidArgument naming %s", err, c.errHas)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("CDIDevices = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// Check and Inject against spec files in a temp dir: the edits land in the
// spec; an unknown device or CDI switched off is an error naming it.
func TestCDICheckInject(t *testing.T) {
	dir := t.TempDir()
	spec := `{"cdiVersion": "0.6.0", "kind": "husk.test/dev",
  "devices": [{"name": "null2", "containerEdits": {
    "deviceNodes": [{"path": "/dev/null2", "hostPath": "/dev/null"}],
    "env": ["HUSK_CDI=yes"],
    "mounts": [{"hostPath": "/tmp", "containerPath": "/cdi", "options": ["bind", "ro"]}]}}]}`
	if err := os.WriteFile(filepath.Join(dir, "husk.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCDI([]string{filepath.Join(dir, "missing"), dir})
	if err := c.Check([]string{"husk.test/dev=null2", "husk.test/dev=nope"}); !errors.Is(err, errdefs.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "husk.test/dev=nope") || strings.Contains(err.Error(), "null2,") {
		t.Fatalf("Check with an unknown device: %v", err)
	}
	if err := c.Check([]string{"husk.test/dev=null2"}); err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/bin"}}, Linux: &specs.Linux{}}
	if err := c.Inject(s, []string{"husk.test/dev=null2"}); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/null2" || s.Linux.Devices[0].Type != "c" ||
		s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	if !reflect.DeepEqual(s.Process.Env, []string{"PATH=/bin", "HUSK_CDI=yes"}) {
		t.Errorf("env %q", s.Process.Env)
	}
	if len(s.Mounts) != 1 || s.Mounts[0].Destination != "/cdi" {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if r := s.Linux.Resources; r == nil || len(r.Devices) != 1 || !r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
		t.Errorf("device cgroup rules %+v", r)
	}

	var off *CDI
	if err := off.Check([]string{"husk.test/dev=null2"}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "husk.test/dev=null2") {
		t.Errorf("Check with CDI off: %v", err)
	}
	if err := off.Check(nil); err != nil {
		t.Errorf("Check of no devices with CDI off: %v", err)
	}
}
