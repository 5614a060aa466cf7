// Package metrics produces the cadvisor-style Prometheus metrics kubelet
// asks a CRI runtime for (ListMetricDescriptors, ListPodSandboxMetrics)
// when it takes pod and container stats from the runtime instead of
// cadvisor. Names and meanings follow cadvisor, label keys follow
// containerd's CRI plugin, so dashboards built on either keep working.
package metrics

import (
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// baseLabels start every metric's labels: kubelet turns the keys into
// Prometheus label names, and these are the ones cadvisor's series carry
// on kubelet's /metrics/cadvisor (pod, namespace, container, id, image), in
// containerd's order. Pod-level series (the network) leave container and
// image empty and carry the pod's ID as id, as containerd does.
var baseLabels = []string{"pod", "namespace", "container", "id", "image"}

// family is one metric name: what kubelet is told about it, and the label
// keys its values carry after the base ones.
type family struct {
	name  string
	help  string
	kind  runtime.MetricType
	extra []string
}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

// Label keys after the base ones. The values are cadvisor's: device is a
// block device (/dev/vda1), interface a network interface, failure_type
// pgfault or pgmajfault, scope container or hierarchy, pagesize "2MB".
var (
	deviceLabels  = []string{"device"}
	blkioLabels   = []string{"device", "major", "minor", "operation"}
	netLabels     = []string{"interface"}
	failureLabels = []string{"failure_type", "scope"}
	hugetlbLabels = []string{"pagesize"}
)

// CPU. The CRI carries integers, so the seconds are whole seconds, as in
// containerd and CRI-O.
var (
	cpuUsage            = &family{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed, in whole seconds.", counter, nil}
	cpuUser             = &family{"container_cpu_user_seconds_total", "Cumulative CPU time spent in user mode, in whole seconds.", counter, nil}
	cpuSystem           = &family{"container_cpu_system_seconds_total", "Cumulative CPU time spent in kernel mode, in whole seconds.", counter, nil}
	cfsPeriods          = &family{"container_cpu_cfs_periods_total", "Number of CFS enforcement periods that have elapsed.", counter, nil}
	cfsThrottledPeriods = &family{"container_cpu_cfs_throttled_periods_total", "Number of CFS enforcement periods in which the container was throttled.", counter, nil}
	cfsThrottledSeconds = &family{"container_cpu_cfs_throttled_seconds_total", "Total time the container has been throttled, in whole seconds.", counter, nil}
)

// Memory.
var (
	memUsage      = &family{"container_memory_usage_bytes", "Current memory usage in bytes, page cache included.", gauge, nil}
	memMaxUsage   = &family{"container_memory_max_usage_bytes", "Highest memory usage recorded, in bytes.", gauge, nil}
	memWorkingSet = &family{"container_memory_working_set_bytes", "Memory usage less the inactive file cache, in bytes: what eviction looks at.", gauge, nil}
	memCache      = &family{"container_memory_cache", "Page cache memory in bytes.", gauge, nil}
	memRSS        = &family{"container_memory_rss", "Anonymous memory and swap cache in bytes.", gauge, nil}
	memMapped     = &family{"container_memory_mapped_file", "Memory-mapped file pages in bytes.", gauge, nil}
	memKernel     = &family{"container_memory_kernel_usage", "Kernel memory charged to the container, in bytes.", gauge, nil}
	memSwap       = &family{"container_memory_swap", "Swap used by the container, in bytes.", gauge, nil}
	memFailcnt    = &family{"container_memory_failcnt", "Number of times memory usage hit the limit.", counter, nil}
	memFailures   = &family{"container_memory_failures_total", "Cumulative count of page faults, by fault type and by whether descendants are included.", counter, failureLabels}
	oomEvents     = &family{"container_oom_events_total", "Number of processes the kernel OOM-killed in the container.", counter, nil}
)

// Writable layer and block I/O.
var (
	fsUsage          = &family{"container_fs_usage_bytes", "Bytes the container has written to its writable layer (apparent size).", gauge, deviceLabels}
	fsLimit          = &family{"container_fs_limit_bytes", "Size in bytes of the filesystem holding the container's writable layer.", gauge, deviceLabels}
	fsInodesTotal    = &family{"container_fs_inodes_total", "Number of inodes of the filesystem holding the container's writable layer.", gauge, deviceLabels}
	fsInodesFree     = &family{"container_fs_inodes_free", "Number of free inodes of the filesystem holding the container's writable layer.", gauge, deviceLabels}
	fsReadsBytes     = &family{"container_fs_reads_bytes_total", "Cumulative bytes read from the block device.", counter, deviceLabels}
	fsReads          = &family{"container_fs_reads_total", "Cumulative reads completed on the block device.", counter, deviceLabels}
	fsWritesBytes    = &family{"container_fs_writes_bytes_total", "Cumulative bytes written to the block device.", counter, deviceLabels}
	fsWrites         = &family{"container_fs_writes_total", "Cumulative writes completed on the block device.", counter, deviceLabels}
	blkioDeviceUsage = &family{"container_blkio_device_usage_total", "Cumulative bytes of block I/O, by device and operation.", counter, blkioLabels}
)

// Huge pages.
var (
	hugetlbUsage    = &family{"container_hugetlb_usage_bytes", "Huge page memory in use, in bytes.", gauge, hugetlbLabels}
	hugetlbMaxUsage = &family{"container_hugetlb_max_usage_bytes", "Highest huge page memory use recorded, in bytes.", gauge, hugetlbLabels}
)

// Network, per interface of the pod's network namespace.
var (
	netRxBytes   = &family{"container_network_receive_bytes_total", "Cumulative bytes received.", counter, netLabels}
	netRxPackets = &family{"container_network_receive_packets_total", "Cumulative packets received.", counter, netLabels}
	netRxDropped = &family{"container_network_receive_packets_dropped_total", "Cumulative packets dropped while receiving.", counter, netLabels}
	netRxErrors  = &family{"container_network_receive_errors_total", "Cumulative errors while receiving.", counter, netLabels}
	netTxBytes   = &family{"container_network_transmit_bytes_total", "Cumulative bytes transmitted.", counter, netLabels}
	netTxPackets = &family{"container_network_transmit_packets_total", "Cumulative packets transmitted.", counter, netLabels}
	netTxDropped = &family{"container_network_transmit_packets_dropped_total", "Cumulative packets dropped while transmitting.", counter, netLabels}
	netTxErrors  = &family{"container_network_transmit_errors_total", "Cumulative errors while transmitting.", counter, netLabels}
)

// Processes.
var (
	processes  = &family{"container_processes", "Number of processes in the container.", gauge, nil}
	threads    = &family{"container_threads", "Number of threads in the container.", gauge, nil}
	threadsMax = &family{"container_threads_max", "Most tasks the container may have (pids limit); 0 means unlimited.", gauge, nil}
	fds        = &family{"container_file_descriptors", "Number of open file descriptors in the container.", gauge, nil}
	sockets    = &family{"container_sockets", "Number of open sockets in the container.", gauge, nil}
)

// Pressure stall information (cgroup v2 only), in whole seconds.
var (
	cpuWaiting = &family{"container_pressure_cpu_waiting_seconds_total", "Total time some tasks waited for CPU, in whole seconds.", counter, nil}
	cpuStalled = &family{"container_pressure_cpu_stalled_seconds_total", "Total time all tasks were stalled waiting for CPU, in whole seconds.", counter, nil}
	memWaiting = &family{"container_pressure_memory_waiting_seconds_total", "Total time some tasks waited for memory, in whole seconds.", counter, nil}
	memStalled = &family{"container_pressure_memory_stalled_seconds_total", "Total time all tasks were stalled waiting for memory, in whole seconds.", counter, nil}
	ioWaiting  = &family{"container_pressure_io_waiting_seconds_total", "Total time some tasks waited for I/O, in whole seconds.", counter, nil}
	ioStalled  = &family{"container_pressure_io_stalled_seconds_total", "Total time all tasks were stalled waiting for I/O, in whole seconds.", counter, nil}
)

// The container's configuration and life.
var (
	specCPUPeriod      = &family{"container_spec_cpu_period", "CFS period of the container, in microseconds.", gauge, nil}
	specCPUQuota       = &family{"container_spec_cpu_quota", "CFS quota of the container per period, in microseconds.", gauge, nil}
	specCPUShares      = &family{"container_spec_cpu_shares", "CPU shares of the container.", gauge, nil}
	specMemLimit       = &family{"container_spec_memory_limit_bytes", "Memory limit of the container in bytes; 0 means unlimited.", gauge, nil}
	specMemReservation = &family{"container_spec_memory_reservation_limit_bytes", "Memory reservation (soft limit) of the container in bytes; 0 means none.", gauge, nil}
	specMemSwapLimit   = &family{"container_spec_memory_swap_limit_bytes", "Memory plus swap limit of the container in bytes.", gauge, nil}
	startTime          = &family{"container_start_time_seconds", "Start time of the container, in seconds since the Unix epoch.", gauge, nil}
	lastSeen           = &family{"container_last_seen", "Last time the runtime saw the container, in seconds since the Unix epoch.", gauge, nil}
)

// families is every metric PodMetrics can produce, in the order
// Descriptors lists them.
var families = []*family{
	cpuUsage, cpuUser, cpuSystem, cfsPeriods, cfsThrottledPeriods, cfsThrottledSeconds,
	memUsage, memMaxUsage, memWorkingSet, memCache, memRSS, memMapped, memKernel, memSwap,
	memFailcnt, memFailures, oomEvents,
	fsUsage, fsLimit, fsInodesTotal, fsInodesFree,
	fsReadsBytes, fsReads, fsWritesBytes, fsWrites, blkioDeviceUsage,
	hugetlbUsage, hugetlbMaxUsage,
	netRxBytes, netRxPackets, netRxDropped, netRxErrors,
	netTxBytes, netTxPackets, netTxDropped, netTxErrors,
	processes, threads, threadsMax, fds, sockets,
	cpuWaiting, cpuStalled, memWaiting, memStalled, ioWaiting, ioStalled,
	specCPUPeriod, specCPUQuota, specCPUShares, specMemLimit, specMemReservation, specMemSwapLimit,
	startTime, lastSeen,
}

// Descriptors describes every metric PodMetrics produces, for
// ListMetricDescriptors. Each call returns new messages: the caller may
// hand them to gRPC, which must not share them between responses.
func Descriptors() []*runtime.MetricDescriptor {
	out := make([]*runtime.MetricDescriptor, 0, len(families))
	for _, f := range families {
		out = append(out, &runtime.MetricDescriptor{
			Name:      f.name,
			Help:      f.help,
			LabelKeys: f.labelKeys(),
		})
	}
	return out
}

func (f *family) labelKeys() []string {
	keys := make([]string, 0, len(baseLabels)+len(f.extra))
	return append(append(keys, baseLabels...), f.extra...)
}
