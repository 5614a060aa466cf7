package cri

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"

	"github.com/huskrt/husk/internal/errdefs"
	"github.com/huskrt/husk/sandbox"
)

// Node is what request validation needs to know about the node: values
// naming what it does not have (a CPU, a huge page size) would otherwise
// fail deep in libcontainer as Unknown.
type Node struct {
	// HugepageSizes are the huge page sizes the kernel offers, as the
	// cgroup files name them ("2MB", "1GB").
	HugepageSizes []string
	// CPUs and Mems are the node's possible CPUs and memory nodes. Empty
	// means unknown: then only the syntax and maxCPU are checked.
	CPUs, Mems cpuset.CPUSet
}

// Limits of cgroup values, as the kernel enforces them (kernel/sched/core.c
// for CFS bandwidth, the cpu controller for shares) and libcontainer
// checks them; a value outside comes back from libcontainer as Unknown.
const (
	minCPUPeriod = 1000    // µs: min_cfs_quota_period, 1 ms
	maxCPUPeriod = 1000000 // µs: max_cfs_quota_period, 1 s
	minCPUQuota  = 1000    // µs: a quota is at least min_cfs_quota_period
	// maxCPUQuota is max_cfs_runtime in µs: the kernel keeps bandwidth in
	// 64-20 bits.
	maxCPUQuota = 1<<44 - 1
	minShares   = 2      // cgroup v1 MIN_SHARES; libcontainer maps v2 weights from it
	maxShares   = 262144 // cgroup v1 MAX_SHARES (1 << 18)
	// minMemory is Docker's minimum memory limit (6 MiB), which dockershim
	// enforced for Kubernetes for years: the runtime's own init is charged
	// to the container's cgroup before the limit applies (~2.8 MiB here),
	// and the kernel refuses a limit below what is charged.
	minMemory = 6 << 20
	// maxCPU bounds a CPU or memory node number when the node's are
	// unknown: CONFIG_NR_CPUS is at most 8192.
	maxCPU = 8191
)

// validateResources checks container resources, for CreateContainer
// (field "config.linux.resources") and UpdateContainerResources
// ("linux"). Zero means "not set" for every number, as kubelet sends it.
func validateResources(field string, r *runtime.LinuxContainerResources, node Node) error {
	return runChecks(field, r, node, checkCPUPeriod, checkCPUQuota, checkCPUShares, checkMemory, checkCpusets, checkHugepages, checkOOMScoreAdj, checkUnified)
}

func runChecks(field string, r *runtime.LinuxContainerResources, node Node, checks ...func(string, *runtime.LinuxContainerResources, Node) error) error {
	if r == nil {
		return nil
	}
	for _, check := range checks {
		if err := check(field, r, node); err != nil {
			return err
		}
	}
	return nil
}

// validatePodResources checks a pod's resources and overhead
// (RunPodSandbox's config.linux, UpdatePodSandboxResources; prefix names
// where they are) as a container's resources, except the overhead's
// memory, which is added to a limit rather than one and may be small
// (RuntimeClass overheads of 1 MiB are common). Their sum, the limit of a
// pod's own cgroup, is checked too: the kernel takes it or nothing.
func validatePodResources(prefix string, res, overhead *runtime.LinuxContainerResources, node Node) error {
	if err := validateResources(prefix+"resources", res, node); err != nil {
		return err
	}
	if err := runChecks(prefix+"overhead", overhead, node, checkCPUPeriod, checkCPUQuota, checkCPUShares, checkOverheadMemory, checkCpusets, checkHugepages, checkOOMScoreAdj, checkUnified); err != nil {
		return err
	}
	if overhead == nil {
		return nil
	}
	return validateResources(prefix+"resources+overhead", sandbox.PodLimits(res, overhead), node)
}

func checkOverheadMemory(field string, r *runtime.LinuxContainerResources, _ Node) error {
	if m := r.GetMemoryLimitInBytes(); m < 0 {
		return errdefs.InvalidArgument(field+".memory_limit_in_bytes", "%d is negative", m)
	}
	if s := r.GetMemorySwapLimitInBytes(); s != 0 {
		return errdefs.InvalidArgument(field+".memory_swap_limit_in_bytes", "%d: an overhead adds memory, not swap", s)
	}
	return nil
}

func checkCPUPeriod(field string, r *runtime.LinuxContainerResources, _ Node) error {
	if p := r.GetCpuPeriod(); p != 0 && (p < minCPUPeriod || p > maxCPUPeriod) {
		return errdefs.InvalidArgument(field+".cpu_period", "%d µs is outside [%d, %d] µs (1 ms to 1 s), the kernel's range", p, minCPUPeriod, maxCPUPeriod)
	}
	return nil
}

func checkCPUQuota(field string, r *runtime.LinuxContainerResources, _ Node) error {
	if q := r.GetCpuQuota(); q != 0 && q != -1 && (q < minCPUQuota || q > maxCPUQuota) {
		return errdefs.InvalidArgument(field+".cpu_quota", "%d µs: want -1 (no limit) or [%d, %d] µs, the kernel's range", q, minCPUQuota, int64(maxCPUQuota))
	}
	return nil
}

func checkCPUShares(field string, r *runtime.LinuxContainerResources, _ Node) error {
	if s := r.GetCpuShares(); s != 0 && (s < minShares || s > maxShares) {
		return errdefs.InvalidArgument(field+".cpu_shares", "%d is outside [%d, %d], the kernel's range", s, minShares, maxShares)
	}
	return nil
}

// checkMemory: swap is memory plus swap, as cgroup v1 has it; the kernel
// (v1) and libcontainer (v2) refuse it below the memory limit or without
// one.
func checkMemory(field string, r *runtime.LinuxContainerResources, _ Node) error {
	limit, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
	switch {
	case limit < 0:
		return errdefs.InvalidArgument(field+".memory_limit_in_bytes", "%d is negative", limit)
	case limit != 0 && limit < minMemory:
		return errdefs.InvalidArgument(field+".memory_limit_in_bytes", "%d bytes is below %d (6 MiB), the least a container starts with", limit, minMemory)
	case swap < -1:
		return errdefs.InvalidArgument(field+".memory_swap_limit_in_bytes", "%d is below -1 (unlimited)", swap)
	case swap > 0 && limit == 0:
		return errdefs.InvalidArgument(field+".memory_swap_limit_in_bytes", "%d is set without memory_limit_in_bytes", swap)
	case swap > 0 && swap < limit:
		return errdefs.InvalidArgument(field+".memory_swap_limit_in_bytes", "%d is below memory_limit_in_bytes %d: it counts memory and swap together", swap, limit)
	}
	return nil
}

func checkCpusets(field string, r *runtime.LinuxContainerResources, node Node) error {
	if err := checkCpuset(field+".cpuset_cpus", r.GetCpusetCpus(), node.CPUs, "CPU"); err != nil {
		return err
	}
	return checkCpuset(field+".cpuset_mems", r.GetCpusetMems(), node.Mems, "memory node")
}

// checkCpuset checks a kernel list ("0-3,8") against the node's set. It
// parses by hand rather than with k8s.io/utils/cpuset.Parse, which makes
// a set of every number in a range: "0-2000000000" would be two billion.
func checkCpuset(field, s string, node cpuset.CPUSet, what string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxString {
		return checkLength(field, s, maxString, stringLimit.what)
	}
	highest := maxCPU
	if !node.IsEmpty() {
		l := node.List()
		highest = l[len(l)-1]
	}
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		first, err1 := strconv.Atoi(lo)
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || first < 0 || last < first {
			return errdefs.InvalidArgument(field, "%q is not a list of %ss such as \"0-3,8\"", s, what)
		}
		if last > highest {
			return errdefs.InvalidArgument(field, "%s %d is not on this node (it has %s)", what, last, node)
		}
		for n := first; n <= last && !node.IsEmpty(); n++ {
			if !node.Contains(n) {
				return errdefs.InvalidArgument(field, "%s %d is not on this node (it has %s)", what, n, node)
			}
		}
	}
	return nil
}

// checkHugepages: a limit for a page size the kernel does not have names
// a cgroup file that does not exist.
func checkHugepages(field string, r *runtime.LinuxContainerResources, node Node) error {
	for i, h := range r.GetHugepageLimits() {
		if !slices.Contains(node.HugepageSizes, h.GetPageSize()) {
			return errdefs.InvalidArgument(fmt.Sprintf("%s.hugepage_limits[%d].page_size", field, i), "%q is not a huge page size of this node (it has %q)", h.GetPageSize(), node.HugepageSizes)
		}
	}
	return nil
}

func checkOOMScoreAdj(field string, r *runtime.LinuxContainerResources, _ Node) error {
	if o := r.GetOomScoreAdj(); o < -1000 || o > 1000 {
		return errdefs.InvalidArgument(field+".oom_score_adj", "%d is outside [-1000, 1000]", o)
	}
	return nil
}

// checkUnified: the keys of unified name files in the container's cgroup
// directory.
func checkUnified(field string, r *runtime.LinuxContainerResources, _ Node) error {
	for k, v := range r.GetUnified() {
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/\x00") {
			return errdefs.InvalidArgument(field+".unified", "key %s is not a cgroup file name", quoteKey(k))
		}
		if strings.ContainsRune(v, 0) {
			return errdefs.InvalidArgument(field+".unified", "value of %s contains a NUL byte", quoteKey(k))
		}
	}
	return nil
}
