package cri

import (
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
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

// containerStats reads one container's cgroup now, and its writable
// layer (see layerUsage). A container whose cgroup is gone reports its
// attributes alone, and a nil cgroup reading.
func (s *Server) containerStats(c *container.Container) (*runtime.ContainerStats, *container.CgroupStats) {
	out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{
		Id: c.ID, Metadata: c.Config.GetMetadata(), Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
	}}
	var cg *container.CgroupStats
	now := time.Now()
	if st, err := s.cgroups.read(c.ID, c.CgroupPath); err == nil {
		cg = &st
		out.Cpu, out.Memory = s.usage(c.ID, now, st)
	}
	upper := s.containers.UpperDir(c.ID)
	if l, err := s.layers.get(c.ID, upper); err == nil {
		out.WritableLayer = &runtime.FilesystemUsage{
			Timestamp: l.at.UnixNano(), FsId: &runtime.FilesystemIdentifier{Mountpoint: upper},
			UsedBytes: u64(l.bytes), InodesUsed: u64(l.inodes),
		}
	}
	return out, cg
}

// podStats sums the pause's and the containers' cgroups, read now, and
// reads the pod's network from the pause's namespace. ctrs are the pod's
// containers.
func (s *Server) podStats(sb *sandbox.Sandbox, ctrs []*container.Container) *runtime.PodSandboxStats {
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
	now := time.Now()
	if st, err := s.cgroups.read("pod/"+sb.ID, sb.CgroupPath); err == nil {
		add(st)
	}
	for _, c := range ctrs {
		cs, cg := s.containerStats(c)
		out.Linux.Containers = append(out.Linux.Containers, cs)
		if cg != nil {
			add(*cg)
		}
	}
	if found {
		out.Linux.Cpu, out.Linux.Memory = s.usage("pod/"+sb.ID, now, sum)
	}
	if sb.State == sandbox.StateReady && sb.Namespaces[sandbox.NSNet] != "" {
		at := time.Now()
		if ifs, err := usage.ReadNetDev(sb.PausePID); err == nil {
			var net *runtime.NetworkUsage
			for _, n := range ifs {
				if n.Name == "lo" { // loopback traffic never leaves the pod
					continue
				}
				iu := &runtime.NetworkInterfaceUsage{Name: n.Name, RxBytes: u64(n.RxBytes), RxErrors: u64(n.RxErrors), TxBytes: u64(n.TxBytes), TxErrors: u64(n.TxErrors)}
				if net == nil {
					net = &runtime.NetworkUsage{Timestamp: at.UnixNano(), DefaultInterface: iu}
				} else {
					net.Interfaces = append(net.Interfaces, iu)
				}
			}
			out.Linux.Network = net
		}
	}
	return out
}

// inParallel calls f(0) … f(n-1) on as many goroutines as Go runs
// threads (at most 8): a stats read is a few syscalls per container, and
// kubelet waits for all of them.
func inParallel(n int, f func(i int)) {
	workers := min(goruntime.GOMAXPROCS(0), 8, (n+15)/16) // ≥16 items each
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// forgetGone drops what is kept per container and pod (CPU readings for
// rates, open cgroup files, layer walks) of those that are gone.
func (s *Server) forgetGone() {
	keep := map[string]bool{}
	for _, c := range s.containers.List() {
		keep[c.ID] = true
	}
	s.layers.forget(keep)
	for _, sb := range s.sandboxes.List() {
		keep["pod/"+sb.ID] = true
	}
	s.rates.forget(keep)
	s.cgroups.forget(keep)
}

// shared runs read, or waits for the same read another call has in
// flight, and returns its result: concurrent identical list calls (kubelet
// and a node agent both listing stats) cost one read, and every caller
// still gets readings taken during its call. The result is shared: callers
// must not change it. key names the call and its filter.
func (s *Server) shared(key string, filter proto.Message, read func() any) any {
	if filter != nil {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(filter)
		if err != nil {
			return read() // cannot happen for a decoded request; do not share
		}
		key += "/" + string(b)
	}
	v, _, _ := s.reads.Do(key, func() (any, error) { return read(), nil })
	return v
}
