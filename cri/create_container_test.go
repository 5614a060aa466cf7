package cri

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"

	"github.com/huskrt/husk/internal/errdefs"
)

// testNode has two CPUs, one memory node and 2 MB huge pages, as this
// machine.
var testNode = Node{HugepageSizes: []string{"2MB"}, CPUs: cpuset.New(0, 1), Mems: cpuset.New(0)}

// validCreate is a request as kubelet sends it.
func validCreate() *runtime.CreateContainerRequest {
	return &runtime.CreateContainerRequest{
		PodSandboxId: strings.Repeat("ab", 32),
		Config: &runtime.ContainerConfig{
			Metadata:   &runtime.ContainerMetadata{Name: "web", Attempt: 1},
			Image:      &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
			Command:    []string{"sh", "-c"},
			Args:       []string{"sleep 1000"},
			WorkingDir: "/srv",
			Envs:       []*runtime.KeyValue{{Key: "PATH", Value: []byte("/bin")}},
			Mounts:     []*runtime.Mount{{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/x/volumes/data"}},
			Devices:    []*runtime.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
			Labels: map[string]string{
				"io.kubernetes.container.name": "web", "io.kubernetes.pod.name": strings.Repeat("p", 253),
				"io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": "0b5c2f7e-3a8d-4e0f-9b1c-2d6e8f0a4c7b",
			},
			Annotations: map[string]string{
				"io.kubernetes.container.hash": "9f3c1a2b", "io.kubernetes.container.restartCount": "0",
				"io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
			},
			LogPath: "web/0.log",
			Linux: &runtime.LinuxContainerConfig{
				Resources: &runtime.LinuxContainerResources{
					CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 128 << 20,
					MemorySwapLimitInBytes: 128 << 20, OomScoreAdj: 1000, CpusetCpus: "0-1", CpusetMems: "0",
					HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}},
				},
				SecurityContext: &runtime.LinuxContainerSecurityContext{
					MaskedPaths: []string{"/proc/kcore"}, SupplementalGroups: []int64{1000},
				},
			},
		},
	}
}

type createCase struct {
	name  string
	mod   func(r *runtime.CreateContainerRequest)
	field string // the message must contain it
}

func TestValidateCreateContainer(t *testing.T) {
	if err := validateCreateContainer(validCreate(), testNode); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	res := func(f func(*runtime.LinuxContainerResources)) func(*runtime.CreateContainerRequest) {
		return func(r *runtime.CreateContainerRequest) { f(r.Config.Linux.Resources) }
	}
	const fr = "config.linux.resources."
	cases := []createCase{
		{"no pod", func(r *runtime.CreateContainerRequest) { r.PodSandboxId = "" }, "pod_sandbox_id"},
		{"no config", func(r *runtime.CreateContainerRequest) { r.Config = nil }, "config"},
		{"no name", func(r *runtime.CreateContainerRequest) { r.Config.Metadata.Name = "" }, "config.metadata.name"},
		{"1 MB name", func(r *runtime.CreateContainerRequest) { r.Config.Metadata.Name = strings.Repeat("c", 1<<20) }, "config.metadata.name: 1048576 bytes; at most 253"},
		{"name with a newline", func(r *runtime.CreateContainerRequest) { r.Config.Metadata.Name = "a\nb" }, "config.metadata.name"},
		{"no image", func(r *runtime.CreateContainerRequest) { r.Config.Image.Image = "" }, "config.image.image"},
		{"long image", func(r *runtime.CreateContainerRequest) { r.Config.Image.Image = strings.Repeat("i", 5000) }, "config.image.image: 5000 bytes"},
		{"huge label map", func(r *runtime.CreateContainerRequest) { r.Config.Labels = bigMap(2000, 200) }, "config.labels: 2000 labels"},
		{"label value too long", func(r *runtime.CreateContainerRequest) { r.Config.Labels["x"] = strings.Repeat("v", 254) }, "config.labels"},
		{"huge annotation map", func(r *runtime.CreateContainerRequest) { r.Config.Annotations = bigMap(1100, 1000) }, "config.annotations: 1100 annotations"},
		{"annotation key too long", func(r *runtime.CreateContainerRequest) { r.Config.Annotations[strings.Repeat("k", 318)] = "" }, "config.annotations"},
		{"huge image annotations", func(r *runtime.CreateContainerRequest) { r.Config.Image.Annotations = bigMap(1100, 1000) }, "config.image.annotations: 1100 entries"},
		{"log path climbs", func(r *runtime.CreateContainerRequest) { r.Config.LogPath = "../../etc/cron.d/x" }, "config.log_path"},
		{"relative container path", func(r *runtime.CreateContainerRequest) { r.Config.Mounts[0].ContainerPath = "data" }, "config.mounts[0].container_path"},
		{"container path climbs", func(r *runtime.CreateContainerRequest) { r.Config.Mounts[0].ContainerPath = "/data/../../proc/sys" }, "config.mounts[0].container_path"},
		{"relative host path", func(r *runtime.CreateContainerRequest) { r.Config.Mounts[0].HostPath = "data" }, "config.mounts[0].host_path"},
		{"device path climbs", func(r *runtime.CreateContainerRequest) { r.Config.Devices[0].ContainerPath = "/dev/../proc/x" }, "config.devices[0].container_path"},
		{"device permissions", func(r *runtime.CreateContainerRequest) { r.Config.Devices[0].Permissions = "rwx" }, "config.devices[0].permissions"},
		{"env key with =", func(r *runtime.CreateContainerRequest) { r.Config.Envs[0].Key = "A=B" }, "config.envs[0].key"},
		{"env longer than MAX_ARG_STRLEN", func(r *runtime.CreateContainerRequest) {
			r.Config.Envs[0].Value = make([]byte, 128<<10)
		}, "config.envs[0]: 131077 bytes; at most 131071"},
		{"argument longer than MAX_ARG_STRLEN", func(r *runtime.CreateContainerRequest) { r.Config.Args[0] = strings.Repeat("a", 128<<10) }, "config.args[0]"},
		{"command longer than MAX_ARG_STRLEN", func(r *runtime.CreateContainerRequest) { r.Config.Command[1] = strings.Repeat("a", 128<<10) }, "config.command[1]"},
		{"arguments beyond execve's ceiling", func(r *runtime.CreateContainerRequest) {
			for range 50 {
				r.Config.Args = append(r.Config.Args, strings.Repeat("a", 128<<10-1))
			}
		}, "config: command, args and envs hold"},
		{"long working dir", func(r *runtime.CreateContainerRequest) { r.Config.WorkingDir = "/" + strings.Repeat("w", 4096) }, "config.working_dir"},
		{"long masked path", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.SecurityContext.MaskedPaths = []string{"/" + strings.Repeat("m", 4096)}
		}, "config.linux.security_context.masked_paths[0]"},
		{"long user name", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.SecurityContext.RunAsUsername = strings.Repeat("u", 1<<20)
		}, "config.linux.security_context.run_as_username"},
		{"too many supplemental groups", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.SecurityContext.SupplementalGroups = make([]int64, 65537)
		}, "config.linux.security_context.supplemental_groups"},
		{"9 MB of unknown fields", func(r *runtime.CreateContainerRequest) {
			r.Config.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 999, protowire.BytesType), make([]byte, 9<<20)))
		}, "bytes encoded; at most 8388608"},
		{"unqualified CDI device", func(r *runtime.CreateContainerRequest) {
			r.Config.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.com/gpu=0"}, {Name: "gpu1"}}
		}, "config.CDI_devices[1].name"},
		{"unqualified CDI device in an annotation", func(r *runtime.CreateContainerRequest) {
			r.Config.Annotations = map[string]string{"cdi.k8s.io/plugin": "vendor.com/gpu"}
		}, `config.annotations["cdi.k8s.io/plugin"]`},
		{"CPU period of 100 µs", res(func(l *runtime.LinuxContainerResources) { l.CpuPeriod = 100 }), fr + "cpu_period"},
		{"CPU period of 2 s", res(func(l *runtime.LinuxContainerResources) { l.CpuPeriod = 2000000 }), fr + "cpu_period"},
		{"negative CPU period", res(func(l *runtime.LinuxContainerResources) { l.CpuPeriod = -1 }), fr + "cpu_period"},
		{"CPU quota of 500 µs", res(func(l *runtime.LinuxContainerResources) { l.CpuQuota = 500 }), fr + "cpu_quota"},
		{"CPU quota of -2", res(func(l *runtime.LinuxContainerResources) { l.CpuQuota = -2 }), fr + "cpu_quota"},
		{"CPU quota beyond the kernel's", res(func(l *runtime.LinuxContainerResources) { l.CpuQuota = 1 << 44 }), fr + "cpu_quota"},
		{"CPU shares of 1", res(func(l *runtime.LinuxContainerResources) { l.CpuShares = 1 }), fr + "cpu_shares"},
		{"CPU shares of 300000", res(func(l *runtime.LinuxContainerResources) { l.CpuShares = 300000 }), fr + "cpu_shares"},
		{"memory of 4 KiB", res(func(l *runtime.LinuxContainerResources) { l.MemoryLimitInBytes, l.MemorySwapLimitInBytes = 4096, 0 }), fr + "memory_limit_in_bytes"},
		{"negative memory", res(func(l *runtime.LinuxContainerResources) { l.MemoryLimitInBytes = -1 }), fr + "memory_limit_in_bytes"},
		{"swap without memory", res(func(l *runtime.LinuxContainerResources) { l.MemoryLimitInBytes = 0 }), fr + "memory_swap_limit_in_bytes"},
		{"swap below memory", res(func(l *runtime.LinuxContainerResources) { l.MemorySwapLimitInBytes = 64 << 20 }), fr + "memory_swap_limit_in_bytes"},
		{"swap of -2", res(func(l *runtime.LinuxContainerResources) { l.MemorySwapLimitInBytes = -2 }), fr + "memory_swap_limit_in_bytes"},
		{"cpuset not a list", res(func(l *runtime.LinuxContainerResources) { l.CpusetCpus = "a-b" }), fr + "cpuset_cpus"},
		{"cpuset backwards", res(func(l *runtime.LinuxContainerResources) { l.CpusetCpus = "1-0" }), fr + "cpuset_cpus"},
		{"cpuset with a CPU the node lacks", res(func(l *runtime.LinuxContainerResources) { l.CpusetCpus = "0,9" }), fr + "cpuset_cpus"},
		{"cpuset of two billion CPUs", res(func(l *runtime.LinuxContainerResources) { l.CpusetCpus = "0-2000000000" }), fr + "cpuset_cpus"},
		{"cpuset mems the node lacks", res(func(l *runtime.LinuxContainerResources) { l.CpusetMems = "1" }), fr + "cpuset_mems"},
		{"huge page size the node lacks", res(func(l *runtime.LinuxContainerResources) {
			l.HugepageLimits = []*runtime.HugepageLimit{{PageSize: "1GB", Limit: 1 << 30}}
		}), fr + "hugepage_limits[0].page_size"},
		{"OOM score 1001", res(func(l *runtime.LinuxContainerResources) { l.OomScoreAdj = 1001 }), fr + "oom_score_adj"},
		{"OOM score -1001", res(func(l *runtime.LinuxContainerResources) { l.OomScoreAdj = -1001 }), fr + "oom_score_adj"},
		{"unified key climbs", res(func(l *runtime.LinuxContainerResources) { l.Unified = map[string]string{"../cgroup.procs": "1"} }), fr + "unified"},
		{"long unified value", res(func(l *runtime.LinuxContainerResources) {
			l.Unified = map[string]string{"memory.high": strings.Repeat("1", 4097)}
		}), fr + "unified"},
	}
	runCreateCases(t, cases)
}

func runCreateCases(t *testing.T, cases []createCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validCreate()
			c.mod(r)
			err := validateCreateContainer(r, testNode)
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", errdefs.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("message of %d bytes: it carries what it refuses", len(err.Error()))
			}
		})
	}
}

// The bounds of the kernel's ranges are in them; zero is "not set".
func TestValidateCreateContainerAcceptsKernelBounds(t *testing.T) {
	for name, l := range map[string]*runtime.LinuxContainerResources{
		"nothing set":        {},
		"shortest period":    {CpuPeriod: 1000, CpuQuota: 1000},
		"longest period":     {CpuPeriod: 1000000, CpuQuota: 1<<44 - 1},
		"no quota":           {CpuQuota: -1},
		"fewest shares":      {CpuShares: 2},
		"most shares":        {CpuShares: 262144},
		"6 MiB":              {MemoryLimitInBytes: 6 << 20},
		"unlimited swap":     {MemoryLimitInBytes: 6 << 20, MemorySwapLimitInBytes: -1},
		"cpuset list":        {CpusetCpus: "0,1", CpusetMems: "0-0"},
		"lowest OOM score":   {OomScoreAdj: -1000},
		"unified on v2":      {Unified: map[string]string{"memory.high": "max"}},
		"2 MB huge pages":    {HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}},
		"largest limit seen": {MemoryLimitInBytes: 1 << 62},
	} {
		t.Run(name, func(t *testing.T) {
			r := validCreate()
			r.Config.Linux.Resources = l
			if err := validateCreateContainer(r, testNode); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("critest's names", func(t *testing.T) {
		r := validCreate()
		r.Config.Metadata.Name = "container-with-RunAsGroup-without-RunAsUser-test-" + "0b5c2f7e-3a8d-4e0f-9b1c-2d6e8f0a4c7b"
		if err := validateCreateContainer(r, testNode); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		r := validCreate()
		r.Config.Linux.Resources.CpusetCpus = "0-63"
		r.Config.Linux.Resources.HugepageLimits = nil
		if err := validateCreateContainer(r, Node{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestValidateUpdateResources(t *testing.T) {
	valid := func() *runtime.UpdateContainerResourcesRequest {
		return &runtime.UpdateContainerResourcesRequest{ContainerId: "abc", Linux: validCreate().Config.Linux.Resources}
	}
	if err := validateUpdateResources(valid(), testNode); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	for _, c := range []struct {
		name  string
		mod   func(*runtime.UpdateContainerResourcesRequest)
		field string
	}{
		{"no container", func(r *runtime.UpdateContainerResourcesRequest) { r.ContainerId = "" }, "container_id"},
		{"no resources", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux = nil }, "linux"},
		{"CPU period of 100 µs", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.CpuPeriod = 100 }, "linux.cpu_period"},
		{"CPU period of 2 s", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.CpuPeriod = 2000000 }, "linux.cpu_period"},
		{"CPU quota of 500 µs", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.CpuQuota = 500 }, "linux.cpu_quota"},
		{"CPU shares of 1", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.CpuShares = 1 }, "linux.cpu_shares"},
		{"memory of 1 byte", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.MemoryLimitInBytes = 1 }, "linux.memory_limit_in_bytes"},
		{"swap below memory", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.MemorySwapLimitInBytes = 1 << 20 }, "linux.memory_swap_limit_in_bytes"},
		{"cpuset the node lacks", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.CpusetCpus = "9" }, "linux.cpuset_cpus"},
		{"huge page size the node lacks", func(r *runtime.UpdateContainerResourcesRequest) {
			r.Linux.HugepageLimits = []*runtime.HugepageLimit{{PageSize: "1GB"}}
		}, "linux.hugepage_limits[0].page_size"},
		{"OOM score 1001", func(r *runtime.UpdateContainerResourcesRequest) { r.Linux.OomScoreAdj = 1001 }, "linux.oom_score_adj"},
		{"huge annotation map", func(r *runtime.UpdateContainerResourcesRequest) { r.Annotations = bigMap(1100, 1000) }, "annotations"},
		{"long unified value", func(r *runtime.UpdateContainerResourcesRequest) {
			r.Linux.Unified = map[string]string{"memory.high": strings.Repeat("1", 5000)}
		}, "linux.unified"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := valid()
			c.mod(r)
			err := validateUpdateResources(r, testNode)
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", errdefs.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
		})
	}
}

// FuzzValidateCreateContainer: no request, however malformed, makes the
// validator panic; it accepts or answers InvalidArgument.
func FuzzValidateCreateContainer(f *testing.F) {
	seed, _ := proto.Marshal(validCreate())
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &runtime.CreateContainerRequest{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		if err := validateCreateContainer(r, testNode); err != nil && errdefs.Code(err) != codes.InvalidArgument {
			t.Fatalf("code %v for %v", errdefs.Code(err), err)
		}
	})
}
