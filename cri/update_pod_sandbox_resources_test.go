package cri

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// validPodResources is an update as kubelet sends it: the pod's limits
// and a RuntimeClass overhead of 1 MiB and 10m CPU.
func validPodResources() *runtime.UpdatePodSandboxResourcesRequest {
	return &runtime.UpdatePodSandboxResourcesRequest{
		PodSandboxId: strings.Repeat("ab", 32),
		Resources:    &runtime.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20},
		Overhead:     &runtime.LinuxContainerResources{CpuShares: 10, CpuQuota: 1000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 20},
	}
}

func TestValidateUpdatePodSandboxResources(t *testing.T) {
	for name, mod := range map[string]func(*runtime.UpdatePodSandboxResourcesRequest){
		"as kubelet sends it": func(*runtime.UpdatePodSandboxResourcesRequest) {},
		"no overhead":         func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead = nil },
		"empty overhead":      func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead = &runtime.LinuxContainerResources{} },
		"nothing":             func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources, r.Overhead = nil, nil },
		"unlimited pod": func(r *runtime.UpdatePodSandboxResourcesRequest) {
			r.Resources.MemoryLimitInBytes, r.Resources.CpuQuota = 0, -1
		},
	} {
		r := validPodResources()
		mod(r)
		if err := validateUpdatePodSandboxResources(r, testNode); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	for _, c := range []struct {
		name  string
		mod   func(*runtime.UpdatePodSandboxResourcesRequest)
		field string
	}{
		{"no pod", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.PodSandboxId = "" }, "pod_sandbox_id"},
		{"negative memory", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources.MemoryLimitInBytes = -1 }, "resources.memory_limit_in_bytes"},
		{"pod memory of 1 MiB", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources.MemoryLimitInBytes = 1 << 20 }, "resources.memory_limit_in_bytes"},
		{"CPU period of 100 µs", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources.CpuPeriod = 100 }, "resources.cpu_period"},
		{"CPU quota of 500 µs", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources.CpuQuota = 500 }, "resources.cpu_quota"},
		{"cpuset the node lacks", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Resources.CpusetCpus = "9" }, "resources.cpuset_cpus"},
		{"negative overhead memory", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead.MemoryLimitInBytes = -1 }, "overhead.memory_limit_in_bytes"},
		{"overhead swap", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead.MemorySwapLimitInBytes = 1 << 20 }, "overhead.memory_swap_limit_in_bytes"},
		{"overhead shares of 1", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead.CpuShares = 1 }, "overhead.cpu_shares"},
		{"overhead period of 2 s", func(r *runtime.UpdatePodSandboxResourcesRequest) { r.Overhead.CpuPeriod = 2000000 }, "overhead.cpu_period"},
		{"shares summed past the kernel's", func(r *runtime.UpdatePodSandboxResourcesRequest) {
			r.Resources.CpuShares, r.Overhead.CpuShares = maxShares, 10
		}, "resources+overhead.cpu_shares"},
		{"unified value with NUL", func(r *runtime.UpdatePodSandboxResourcesRequest) {
			r.Resources.Unified = map[string]string{"memory.high": "1\x00"}
		}, "resources.unified"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := validPodResources()
			c.mod(r)
			err := validateUpdatePodSandboxResources(r, testNode)
			if errdefs.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", errdefs.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
		})
	}
}

// RunPodSandbox checks the pod's first resources and overhead the same
// way, under config.linux.
func TestValidatePodResourcesAtRun(t *testing.T) {
	r := validPodResources()
	if err := validatePodResources("config.linux.", r.Resources, r.Overhead, testNode); err != nil {
		t.Fatal(err)
	}
	r.Overhead.MemoryLimitInBytes = -5
	if err := validatePodResources("config.linux.", r.Resources, r.Overhead, testNode); errdefs.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.linux.overhead.memory_limit_in_bytes") {
		t.Errorf("negative overhead: %v", err)
	}
}
