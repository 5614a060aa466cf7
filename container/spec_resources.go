package container

import (
	"fmt"
	"maps"

	"github.com/huskrt/husk/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const fieldResources = "config.linux.resources"

// Resources turns CRI resource limits into the OCI ones, for a new
// container's spec and for UpdateContainerResources. A zero CRI value means
// "not set" and stays unset (libcontainer then leaves the cgroup's value
// alone). Hugepage limits are dropped on a node without the hugetlb
// controller, as containerd's tolerate_missing_hugetlb_controller does;
// unified needs cgroup v2, which libcontainer enforces at start, so it is
// refused here where the error can name the field. oom_score_adj is the
// process's, not the cgroup's: see Spec. The result is never nil.
func Resources(r *runtime.LinuxContainerResources, node NodeInfo) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	var err error
	if out.CPU, err = cpuResources(r); err != nil {
		return nil, err
	}
	if out.Memory, err = memoryResources(r); err != nil {
		return nil, err
	}
	if node.HugetlbController {
		for i, h := range r.GetHugepageLimits() {
			if h.GetPageSize() == "" {
				return nil, errdefs.InvalidArgument(fmt.Sprintf("%s.hugepage_limits[%d].page_size", fieldResources, i), "must be set")
			}
			out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if len(r.GetUnified()) > 0 {
		if !node.CgroupV2 {
			return nil, errdefs.InvalidArgument(fieldResources+".unified", "needs cgroup v2; this node runs cgroup v1")
		}
		out.Unified = maps.Clone(r.GetUnified())
	}
	return out, nil
}

func cpuResources(r *runtime.LinuxContainerResources) (*specs.LinuxCPU, error) {
	switch {
	case r.GetCpuShares() < 0:
		return nil, errdefs.InvalidArgument(fieldResources+".cpu_shares", "%d is negative", r.GetCpuShares())
	case r.GetCpuPeriod() < 0:
		return nil, errdefs.InvalidArgument(fieldResources+".cpu_period", "%d is negative", r.GetCpuPeriod())
	case r.GetCpuQuota() < -1:
		// -1 is the cgroup's "no quota".
		return nil, errdefs.InvalidArgument(fieldResources+".cpu_quota", "%d is below -1", r.GetCpuQuota())
	}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := uint64(r.GetCpuShares()); v != 0 {
		cpu.Shares = &v
	}
	if v := r.GetCpuQuota(); v != 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.GetCpuPeriod()); v != 0 {
		cpu.Period = &v
	}
	if cpu.Shares == nil && cpu.Quota == nil && cpu.Period == nil && cpu.Cpus == "" && cpu.Mems == "" {
		return nil, nil
	}
	return cpu, nil
}

func memoryResources(r *runtime.LinuxContainerResources) (*specs.LinuxMemory, error) {
	switch {
	case r.GetMemoryLimitInBytes() < 0:
		return nil, errdefs.InvalidArgument(fieldResources+".memory_limit_in_bytes", "%d is negative", r.GetMemoryLimitInBytes())
	case r.GetMemorySwapLimitInBytes() < -1:
		// -1 is the cgroup's "unlimited swap".
		return nil, errdefs.InvalidArgument(fieldResources+".memory_swap_limit_in_bytes", "%d is below -1", r.GetMemorySwapLimitInBytes())
	}
	mem := &specs.LinuxMemory{}
	if v := r.GetMemoryLimitInBytes(); v != 0 {
		mem.Limit = &v
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		mem.Swap = &v
	}
	if mem.Limit == nil && mem.Swap == nil {
		return nil, nil
	}
	return mem, nil
}
