package main

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name     string
		file     string // "" = missing file
		explicit bool
		check    func(t *testing.T, c Config)
		errHas   string
	}{
		{name: "missing default file means defaults", check: func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c, defaultConfig()) {
				t.Errorf("config %+v, want defaults", c)
			}
		}},
		{name: "missing named file is an error", explicit: true, errHas: "no such file"},
		{name: "a file overrides only what it says", file: "root = \"/data/husk\"\n[runtime]\nstop_timeout = \"3s\"\n", check: func(t *testing.T, c Config) {
			if c.Root != "/data/husk" || c.Runtime.StopTimeout != Duration(3*time.Second) || c.State != "/run/husk" || c.Runtime.ShmSize != 64<<20 {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "unknown keys are refused", file: "[runtime]\nshm_sise = 1\n", errHas: "shm_sise"},
		// stats_period is no longer used, and a file that sets it still loads.
		{name: "stats_period is accepted", file: "[runtime]\nstats_period = \"10s\"\n", check: func(t *testing.T, c Config) {
			if c.Runtime.StatsPeriod != Duration(10*time.Second) {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "cdi defaults on, over the two CDI dirs", check: func(t *testing.T, c Config) {
			if !c.CDI.Enabled || !reflect.DeepEqual(c.CDI.SpecDirs, []string{"/etc/cdi", "/var/run/cdi"}) {
				t.Errorf("cdi %+v", c.CDI)
			}
		}},
		{name: "nri defaults on at containerd's socket", check: func(t *testing.T, c Config) {
			if !c.NRI.Enabled || c.NRI.SocketPath != "/var/run/nri/nri.sock" || c.NRI.PluginPath != "/opt/nri/plugins" ||
				c.NRI.RequestTimeout != Duration(2*time.Second) || c.NRI.RegistrationTimeout != Duration(5*time.Second) {
				t.Errorf("nri %+v", c.NRI)
			}
		}},
		{name: "nri table", file: "[nri]\nenabled = false\nsocket_path = \"/run/x/nri.sock\"\nplugin_request_timeout = \"500ms\"\n", check: func(t *testing.T, c Config) {
			if c.NRI.Enabled || c.NRI.SocketPath != "/run/x/nri.sock" || c.NRI.RequestTimeout != Duration(500*time.Millisecond) {
				t.Errorf("nri %+v", c.NRI)
			}
		}},
		{name: "cdi table", file: "[cdi]\nenabled = false\nspec_dirs = [\"/opt/cdi\"]\n", check: func(t *testing.T, c Config) {
			if c.CDI.Enabled || !reflect.DeepEqual(c.CDI.SpecDirs, []string{"/opt/cdi"}) {
				t.Errorf("cdi %+v", c.CDI)
			}
		}},
		{name: "bad duration", file: "[runtime]\nstop_timeout = \"soon\"\n", errHas: "stop_timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.toml")
			if c.file != "" {
				path = write(c.file)
			}
			cfg, err := loadConfig(path, c.explicit)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

// The printed config is a valid config that loads back to the same values.
func TestPrintedConfigRoundTrips(t *testing.T) {
	c := defaultConfig()
	c.Root = "/elsewhere"
	p := filepath.Join(t.TempDir(), "printed.toml")
	if err := os.WriteFile(p, []byte(c.toml()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(p, true)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, c.toml())
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip: %+v, want %+v", got, c)
	}
}

func TestValidateConfig(t *testing.T) {
	c := defaultConfig()
	c.State = "/" + strings.Repeat("s", 40)
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a state dir too long for socket paths: %v", err)
	}
	c = defaultConfig()
	c.CDI.SpecDirs = []string{"/etc/cdi", "cdi"}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "cdi.spec_dirs") {
		t.Errorf("a relative CDI dir: %v", err)
	}
	for _, h := range []string{"Test", "-a", "a_b", strings.Repeat("a", 64)} {
		c = defaultConfig()
		c.Runtime.Handlers = []string{"test-handler", h}
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "runtime.handlers") {
			t.Errorf("handler %q: %v", h, err)
		}
	}
	c = defaultConfig()
	c.Runtime.Handlers = []string{"test-handler", "runc"}
	if err := c.validate(); err != nil && strings.Contains(err.Error(), "runtime.handlers") {
		t.Errorf("valid handlers refused: %v", err)
	}
	c = defaultConfig()
	c.NRI.SocketPath = "nri.sock"
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "nri.socket_path") {
		t.Errorf("a relative NRI socket: %v", err)
	}
	c = defaultConfig()
	c.NRI.RequestTimeout = 0
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "plugin_request_timeout") {
		t.Errorf("no NRI request timeout: %v", err)
	}
	c = defaultConfig()
	c.Root = "relative"
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("a relative root: %v", err)
	}
	c = defaultConfig()
	c.Metrics.Address = "9090"
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "metrics.address") {
		t.Errorf("a metrics address without a host part: %v", err)
	}
	for _, e := range []string{"127.0.0.1:4317", "grpc://c:4317", "http://"} {
		c = defaultConfig()
		c.Tracing.Endpoint = e
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "tracing.endpoint") {
			t.Errorf("tracing endpoint %q: %v", e, err)
		}
	}
	for _, r := range []float64{-0.1, 1.5, math.NaN()} {
		c = defaultConfig()
		c.Tracing.SamplingRatio = r
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "tracing.sampling_ratio") {
			t.Errorf("sampling ratio %v: %v", r, err)
		}
	}
	c = defaultConfig()
	c.Tracing.Endpoint, c.Tracing.SamplingRatio = "https://otel.example:4317", 0.25
	if err := c.validate(); err != nil && strings.Contains(err.Error(), "tracing") {
		t.Errorf("a valid tracing table refused: %v", err)
	}
}

func TestValidateCgroupDriver(t *testing.T) {
	cases := []struct {
		driver, parent string
		errHas         string
	}{
		{"", "", ""},
		{"cgroupfs", "/kubepods", ""},
		{"systemd", "", ""},
		{"systemd", "kubepods.slice", ""},
		{"cgroupv2", "", "runtime.cgroup_driver"},
		{"systemd", "/husk", "runtime.cgroup_parent"},
		{"systemd", "kubepods", "runtime.cgroup_parent"},
		{"cgroupfs", "husk.slice:cri-husk:x", "runtime.cgroup_parent"},
		{"cgroupfs", "/a/../..", "runtime.cgroup_parent"},
	}
	for _, c := range cases {
		cfg := defaultConfig()
		cfg.Runtime.CgroupDriver, cfg.Runtime.CgroupParent = c.driver, c.parent
		err := cfg.validate()
		if c.errHas == "" && err != nil && strings.Contains(err.Error(), "cgroup") {
			t.Errorf("driver %q parent %q: %v", c.driver, c.parent, err)
		}
		if c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)) {
			t.Errorf("driver %q parent %q: err = %v, want one naming %s", c.driver, c.parent, err, c.errHas)
		}
	}
}
