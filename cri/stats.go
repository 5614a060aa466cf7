package cri

import (
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/container/usage"
	"github.com/huskrt/husk/sandbox"
)

// cpuSample is the last CPU reading of a cgroup, from which the next one
// derives a rate (usage_nano_cores), as kubelet's summary API wants it.
type cpuSample struct {
	at    time.Time
	usage uint64
}

type cpuRates struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

// rate records a reading of key and returns nano-cores since the last one.
func (r *cpuRates) rate(key string, at time.Time, usage uint64) *runtime.UInt64Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]cpuSample{}
	}
	prev, ok := r.last[key]
	r.last[key] = cpuSample{at, usage}
	if !ok || !at.After(prev.at) || usage < prev.usage {
		return nil
	}
	return &runtime.UInt64Value{Value: uint64(float64(usage-prev.usage) / at.Sub(prev.at).Seconds())}
}

func (r *cpuRates) forget(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.last {
		if !keep[k] {
			delete(r.last, k)
		}
	}
}

func u64(v uint64) *runtime.UInt64Value { return &runtime.UInt64Value{Value: v} }

// usage turns cgroup stats into the CRI's CPU and memory usage.
func (s *Server) usage(key string, now time.Time, st container.CgroupStats) (*runtime.CpuUsage, *runtime.MemoryUsage) {
	ts := now.UnixNano()
	cpu := &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(st.CPUUsageNanos), UsageNanoCores: s.rates.rate(key, now, st.CPUUsageNanos)}
	mem := &runtime.MemoryUsage{
		Timestamp: ts, WorkingSetBytes: u64(st.MemoryWorkingSetBytes), AvailableBytes: u64(st.MemoryAvailableBytes),
		UsageBytes: u64(st.MemoryUsageBytes), RssBytes: u64(st.MemoryRSSBytes),
		PageFaults: u64(st.PageFaults), MajorPageFaults: u64(st.MajorPageFaults),
	}
	return cpu, mem
}

// containerStats reads one container's cgroup and writable layer. A
// container whose cgroup is gone reports its attributes alone.
func (s *Server) containerStats(c *container.Container, now time.Time) *runtime.ContainerStats {
	out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{
		Id: c.ID, Metadata: c.Config.GetMetadata(), Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
	}}
	if st, err := container.ReadCgroupStats(c.CgroupPath); err == nil {
		out.Cpu, out.Memory = s.usage(c.ID, now, st)
	}
	upper := s.containers.UpperDir(c.ID)
	if b, n, err := usage.DirUsage(upper); err == nil {
		out.WritableLayer = &runtime.FilesystemUsage{
			Timestamp: now.UnixNano(), FsId: &runtime.FilesystemIdentifier{Mountpoint: upper},
			UsedBytes: u64(b), InodesUsed: u64(n),
		}
	}
	return out
}

// podStats sums the pause's and the containers' cgroups, and reads the
// pod's network from the pause's namespace.
func (s *Server) podStats(sb *sandbox.Sandbox, now time.Time) *runtime.PodSandboxStats {
	out := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{
			Id: sb.ID, Metadata: sb.Metadata(), Labels: sb.Config.GetLabels(), Annotations: sb.Config.GetAnnotations(),
		},
		Linux: &runtime.LinuxPodSandboxStats{},
	}
	var sum container.CgroupStats
	var found bool
	add := func(st container.CgroupStats) {
		found = true
		sum.CPUUsageNanos += st.CPUUsageNanos
		sum.MemoryUsageBytes += st.MemoryUsageBytes
		sum.MemoryWorkingSetBytes += st.MemoryWorkingSetBytes
		sum.MemoryRSSBytes += st.MemoryRSSBytes
		sum.PageFaults += st.PageFaults
		sum.MajorPageFaults += st.MajorPageFaults
	}
	if st, err := container.ReadCgroupStats(sb.CgroupPath); err == nil {
		add(st)
	}
	for _, c := range s.containers.List() {
		if c.PodID != sb.ID {
			continue
		}
		cs := s.containerStats(c, now)
		out.Linux.Containers = append(out.Linux.Containers, cs)
		if st, err := container.ReadCgroupStats(c.CgroupPath); err == nil {
			add(st)
		}
	}
	if found {
		out.Linux.Cpu, out.Linux.Memory = s.usage("pod/"+sb.ID, now, sum)
	}
	if sb.State == sandbox.StateReady && sb.Namespaces[sandbox.NSNet] != "" {
		if ifs, err := usage.ReadNetDev(sb.PausePID); err == nil {
			var net *runtime.NetworkUsage
			for _, n := range ifs {
				if n.Name == "lo" { // loopback traffic never leaves the pod
					continue
				}
				iu := &runtime.NetworkInterfaceUsage{Name: n.Name, RxBytes: u64(n.RxBytes), RxErrors: u64(n.RxErrors), TxBytes: u64(n.TxBytes), TxErrors: u64(n.TxErrors)}
				if net == nil {
					net = &runtime.NetworkUsage{Timestamp: now.UnixNano(), DefaultInterface: iu}
				} else {
					net.Interfaces = append(net.Interfaces, iu)
				}
			}
			out.Linux.Network = net
		}
	}
	return out
}
