package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/cgroups"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/huskrt/husk/internal/cgroup"
	"github.com/huskrt/husk/internal/errdefs"
)

// PodLimits is what a pod's own cgroup (cgroup.PodCgroup) is limited to:
// its resources, the sum of its containers' as kubelet computes them, plus
// its overhead (RuntimeClass). A zero field is "not set". As kubelet's
// pod cgroup has it (ResourceConfigForPod), overhead adds to a memory or
// CPU limit only where resources set one: a pod with an unlimited
// container stays unlimited. The overhead's quota is scaled to the
// resources' period. Cpusets, huge pages and unified keys are the
// resources' alone; the overhead has none (kubelet sends CPU and memory).
func PodLimits(res, overhead *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	sum := &runtime.LinuxContainerResources{}
	if res != nil {
		sum = proto.Clone(res).(*runtime.LinuxContainerResources)
	}
	if overhead == nil {
		return sum
	}
	if sum.CpuShares != 0 || overhead.CpuShares != 0 {
		sum.CpuShares += overhead.CpuShares
	}
	if sum.CpuQuota > 0 && overhead.CpuQuota > 0 {
		q := overhead.CpuQuota
		if p, op := sum.CpuPeriod, overhead.CpuPeriod; p != 0 && op != 0 && p != op {
			q = q * p / op
		}
		sum.CpuQuota += q
	}
	if sum.MemoryLimitInBytes > 0 {
		sum.MemoryLimitInBytes += overhead.MemoryLimitInBytes
		if sum.MemorySwapLimitInBytes > 0 {
			sum.MemorySwapLimitInBytes += overhead.MemoryLimitInBytes
		}
	}
	return sum
}

// cgroupResources is r as the cgroup managers take it; v2 says whether
// the host is cgroup v2 (shares become cpu.weight there).
func cgroupResources(r *runtime.LinuxContainerResources, v2 bool) *cgroups.Resources {
	c := &cgroups.Resources{
		CpuQuota:   r.GetCpuQuota(),
		CpuPeriod:  uint64(r.GetCpuPeriod()),
		Memory:     r.GetMemoryLimitInBytes(),
		MemorySwap: r.GetMemorySwapLimitInBytes(),
		CpusetCpus: r.GetCpusetCpus(),
		CpusetMems: r.GetCpusetMems(),
		Unified:    r.GetUnified(),
	}
	if s := uint64(r.GetCpuShares()); s != 0 {
		if v2 {
			c.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(s)
		} else {
			c.CpuShares = s
		}
	}
	for _, h := range r.GetHugepageLimits() {
		c.HugetlbLimit = append(c.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return c
}

// makePodCgroup creates the pod's own cgroup with its limits.
func makePodCgroup(sb *Sandbox) error {
	lim := PodLimits(sb.Config.GetLinux().GetResources(), sb.Config.GetLinux().GetOverhead())
	if err := cgroup.Make(sb.PodCgroup, cgroupResources(lim, cgroups.IsCgroup2UnifiedMode())); err != nil {
		return errdefs.FailedPrecondition("the pod's resources and overhead cannot be applied: %v", err)
	}
	return nil
}

// UpdateResources records a pod's new resources and overhead
// (UpdatePodSandboxResources) and, for a pod in its own cgroup, writes
// their sum there: all of it or, when the kernel refuses a value, none
// (the old limits are written back). A pod in a cgroup_parent is in
// kubelet's pod cgroup, which kubelet itself resizes (SetPodCgroupConfig,
// right after this call): only the record changes.
func (m *Manager) UpdateResources(_ context.Context, idOrPrefix string, overhead, resources *runtime.LinuxContainerResources) error {
	p, err := m.lookup(idOrPrefix)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errdefs.NotFound("pod sandbox %s", idOrPrefix)
	}
	cur := p.cur.Load()
	apply := func(from, to *cgroups.Resources) error { return nil }
	if cur.PodCgroup != "" {
		apply = func(from, to *cgroups.Resources) error {
			if err := cgroup.Set(cur.PodCgroup, to); err != nil {
				if rerr := cgroup.Set(cur.PodCgroup, cgroup.Undo(from, to)); rerr != nil {
					klog.ErrorS(rerr, "Restoring the limits of a pod's cgroup after a failed update", "podSandboxID", cur.ID, "cgroup", cur.PodCgroup)
					return fmt.Errorf("updating the resources of pod sandbox %s: %w (restoring the old limits failed too: %v)", cur.ID, err, rerr)
				}
				return errdefs.FailedPrecondition("pod sandbox %s: the kernel refused the new limits of cgroup %s, which keeps its old ones: %v", cur.ID, cur.PodCgroup, err)
			}
			return nil
		}
	}
	v2 := cgroups.IsCgroup2UnifiedMode()
	old := cgroupResources(PodLimits(cur.Config.GetLinux().GetResources(), cur.Config.GetLinux().GetOverhead()), v2)
	next := cgroupResources(PodLimits(resources, overhead), v2)
	if err := apply(old, next); err != nil {
		return err
	}
	err = p.update(func(s *Sandbox) {
		cfg := proto.Clone(s.Config).(*runtime.PodSandboxConfig)
		if cfg.Linux == nil {
			cfg.Linux = &runtime.LinuxPodSandboxConfig{}
		}
		cfg.Linux.Resources, cfg.Linux.Overhead = resources, overhead
		s.Config = cfg
	})
	if err != nil {
		// Unrecorded, so undone: a restart must not find limits its
		// record does not have.
		return errors.Join(err, apply(next, cgroup.Undo(old, next)))
	}
	klog.V(2).InfoS("Pod sandbox resources updated", "podSandboxID", cur.ID, "cgroup", cur.PodCgroup)
	return nil
}
