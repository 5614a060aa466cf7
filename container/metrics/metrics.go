package metrics

import (
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is what the metrics of one container are read from.
type Container struct {
	ID, Name, Image string // CRI container ID, metadata name, image ref
	// CgroupPath is the container's cgroup in cgroupfs form, e.g.
	// /kubepods/pod1/<id>; "" leaves out every cgroup metric.
	CgroupPath string
	// UpperDir is the container's writable layer; "" leaves out the
	// container_fs_* metrics of it.
	UpperDir  string
	StartedAt time.Time // zero: not started, no start time
	// Resources are the container's configured limits; nil leaves out the
	// container_spec_* metrics that come from them.
	Resources *runtime.LinuxContainerResources
}

// Pod is what the metrics of one pod are read from.
type Pod struct {
	ID, Name, Namespace string
	// NetPID is a process in the pod's network namespace (the pause);
	// 0 means no network metrics, as for a pod on the host's network.
	NetPID     int
	Containers []Container
}

// PodMetrics reads the metrics of a pod and its containers, stamped with
// now. What cannot be read (a cgroup that is gone, a controller that is
// not mounted, a process that exited) is left out rather than reported as
// zero, so a container always gets at least what is known without reading
// anything: container_last_seen, its start time and its spec.
func PodMetrics(p Pod, now time.Time) *runtime.PodSandboxMetrics {
	out := &runtime.PodSandboxMetrics{PodSandboxId: p.ID}
	ts := now.UnixNano()
	if p.NetPID > 0 {
		e := newEmitter(ts, p.Name, p.Namespace, "", p.ID, "")
		networkMetrics(e, p.NetPID)
		out.Metrics = e.out
	}
	for _, c := range p.Containers {
		out.ContainerMetrics = append(out.ContainerMetrics, &runtime.ContainerMetrics{
			ContainerId: c.ID,
			Metrics:     containerMetrics(p, c, now),
		})
	}
	return out
}

func containerMetrics(p Pod, c Container, now time.Time) []*runtime.Metric {
	e := newEmitter(now.UnixNano(), p.Name, p.Namespace, c.Name, c.ID, c.Image)
	e.add(lastSeen, unixSeconds(now))
	if !c.StartedAt.IsZero() {
		e.add(startTime, unixSeconds(c.StartedAt))
	}
	specMetrics(e, c.Resources)
	if c.CgroupPath != "" {
		if cg, err := openCgroup(c.CgroupPath); err == nil {
			cg.metrics(e)
		}
	}
	if c.UpperDir != "" {
		writableLayerMetrics(e, c.UpperDir)
	}
	return e.out
}

// unixSeconds clamps times before the epoch, which a uint64 cannot hold.
func unixSeconds(t time.Time) uint64 {
	return uint64(max(t.Unix(), 0))
}

// specMetrics reports the limits the container was configured with. An
// unset field (0) is left out, except the memory limit, where 0 is how
// cadvisor reports "unlimited" and no limit is a known value.
func specMetrics(e *emitter, r *runtime.LinuxContainerResources) {
	if r == nil {
		return
	}
	addPositive(e, specCPUPeriod, r.CpuPeriod)
	addPositive(e, specCPUQuota, r.CpuQuota)
	addPositive(e, specCPUShares, r.CpuShares)
	if r.MemoryLimitInBytes >= 0 {
		e.add(specMemLimit, uint64(r.MemoryLimitInBytes))
	}
	addPositive(e, specMemSwapLimit, r.MemorySwapLimitInBytes)
}

func addPositive(e *emitter, f *family, v int64) {
	if v > 0 {
		e.add(f, uint64(v))
	}
}

// emitter collects one container's (or the pod's) metrics, all with the
// same timestamp and base label values.
type emitter struct {
	ts   int64
	base []string
	out  []*runtime.Metric
}

func newEmitter(ts int64, pod, namespace, container, id, image string) *emitter {
	return &emitter{ts: ts, base: []string{pod, namespace, container, id, image}}
}

// add appends one value. The extra label values must match the family's
// extra keys; a mismatch is a bug here, and the value is dropped rather
// than sent to kubelet, which would refuse the whole scrape.
func (e *emitter) add(f *family, v uint64, extra ...string) {
	if len(extra) != len(f.extra) {
		return
	}
	labels := make([]string, 0, len(e.base)+len(extra))
	labels = append(append(labels, e.base...), extra...)
	e.out = append(e.out, &runtime.Metric{
		Name:        f.name,
		Timestamp:   e.ts,
		MetricType:  f.kind,
		LabelValues: labels,
		Value:       &runtime.UInt64Value{Value: v},
	})
}

// nanosToSeconds turns nanosecond counters into the whole seconds the CRI
// carries.
func nanosToSeconds(ns uint64) uint64 { return ns / uint64(time.Second) }

// microsToSeconds does the same for cgroup v2's microsecond counters.
func microsToSeconds(us uint64) uint64 { return us / uint64(time.Second/time.Microsecond) }
