package sandbox

import (
	"testing"

	"github.com/opencontainers/cgroups"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type res = runtime.LinuxContainerResources

func TestPodLimits(t *testing.T) {
	for _, c := range []struct {
		name                string
		res, overhead, want *res
	}{
		{"nothing", nil, nil, &res{}},
		{"resources alone", &res{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20},
			nil, &res{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20}},
		{"summed", &res{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20},
			&res{CpuShares: 102, CpuQuota: 10000, CpuPeriod: 100000, MemoryLimitInBytes: 8 << 20},
			&res{CpuShares: 614, CpuQuota: 60000, CpuPeriod: 100000, MemoryLimitInBytes: 72 << 20}},
		{"overhead quota scaled to the pod's period", &res{CpuQuota: 50000, CpuPeriod: 100000},
			&res{CpuQuota: 5000, CpuPeriod: 50000}, &res{CpuQuota: 60000, CpuPeriod: 100000}},
		// Unlimited stays unlimited: overhead adds to a limit, it makes none.
		{"no memory limit", &res{CpuShares: 2}, &res{CpuShares: 2, MemoryLimitInBytes: 8 << 20}, &res{CpuShares: 4}},
		{"no quota", &res{CpuQuota: -1, CpuPeriod: 100000}, &res{CpuQuota: 10000, CpuPeriod: 100000}, &res{CpuQuota: -1, CpuPeriod: 100000}},
		{"overhead alone", nil, &res{CpuShares: 102, CpuQuota: 10000, CpuPeriod: 100000, MemoryLimitInBytes: 8 << 20}, &res{CpuShares: 102}},
		{"swap grows with memory", &res{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 128 << 20},
			&res{MemoryLimitInBytes: 8 << 20}, &res{MemoryLimitInBytes: 72 << 20, MemorySwapLimitInBytes: 136 << 20}},
		{"unlimited swap stays", &res{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: -1},
			&res{MemoryLimitInBytes: 8 << 20}, &res{MemoryLimitInBytes: 72 << 20, MemorySwapLimitInBytes: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before *res
			if c.res != nil {
				before = proto.Clone(c.res).(*res)
			}
			if got := PodLimits(c.res, c.overhead); !proto.Equal(got, c.want) {
				t.Errorf("PodLimits = %v, want %v", got, c.want)
			}
			if c.res != nil && !proto.Equal(c.res, before) {
				t.Errorf("PodLimits changed its argument: %v", c.res)
			}
		})
	}
}

func TestCgroupResources(t *testing.T) {
	r := &res{CpuShares: 1024, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: -1,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}}
	v1 := cgroupResources(r, false)
	if v1.CpuShares != 1024 || v1.CpuWeight != 0 || v1.CpuQuota != 50000 || v1.CpuPeriod != 100000 || v1.Memory != 64<<20 || v1.MemorySwap != -1 ||
		len(v1.HugetlbLimit) != 1 || v1.HugetlbLimit[0].Limit != 4<<20 {
		t.Errorf("v1: %+v", v1)
	}
	v2 := cgroupResources(r, true)
	if v2.CpuShares != 0 || v2.CpuWeight != cgroups.ConvertCPUSharesToCgroupV2Value(1024) {
		t.Errorf("v2: shares %d, weight %d", v2.CpuShares, v2.CpuWeight)
	}
	if z := cgroupResources(&res{}, true); z.CpuWeight != 0 || z.CpuShares != 0 {
		t.Errorf("unset shares written: %+v", z)
	}
}
