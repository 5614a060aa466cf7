// Package metrics owns huskd's Prometheus collectors: what the CRI server,
// the sandbox and container managers, the image puller and the network
// record, and what the shims report, read at scrape time. It is served on
// [metrics] address (off by default).
//
// Recording is an atomic add or a histogram observation: it never takes a
// lock that I/O holds, so that it cannot slow a CRI call. The collectors
// are package variables, as client_golang intends: any package records
// without being handed a registry, and recording costs the same whether or
// not anyone scrapes.
package metrics

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "husk"

// Buckets for operations on a node: from a fast status call (~0.5 ms) to
// a pod start with a slow CNI plugin or a container stopped after its
// grace period (tens of seconds).
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

var (
	// CRIRequests counts CRI calls by method and gRPC status code name
	// (OK, NotFound, ...): the code the caller saw.
	CRIRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "cri_requests_total",
		Help: "CRI calls by method and gRPC status code.",
	}, []string{"method", "code"})
	// CRIRequestDuration is the time of CRI calls by method; a stream
	// (GetContainerEvents) counts from its opening to its end.
	CRIRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "cri_request_duration_seconds",
		Help:    "Time of CRI calls by method, errors included.",
		Buckets: durationBuckets,
	}, []string{"method"})

	// SandboxOperationDuration times the steps of a pod's life: create
	// (all of RunPodSandbox's work), network (CNI ADD), stop, remove.
	SandboxOperationDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "sandbox_operation_duration_seconds",
		Help:    "Time of pod sandbox operations (create, network, stop, remove), failures included.",
		Buckets: durationBuckets,
	}, []string{"operation"})
	// ContainerOperationDuration times the steps of a container's life:
	// create, start, stop, remove.
	ContainerOperationDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "container_operation_duration_seconds",
		Help:    "Time of container operations (create, start, stop, remove), failures included.",
		Buckets: durationBuckets,
	}, []string{"operation"})

	// ImagePulls counts pulls that reached a registry, by outcome (success,
	// failure); concurrent identical pulls share one.
	ImagePulls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "image_pulls_total",
		Help: "Image pulls from registries by outcome (success, failure).",
	}, []string{"outcome"})
	// ImagePullBytes counts the response bytes pulls received.
	ImagePullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "image_pull_bytes_total",
		Help: "Bytes received from registries by image pulls.",
	})
	// ImagePullsInProgress is the pulls fetching now.
	ImagePullsInProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "image_pulls_in_progress",
		Help: "Image pulls in progress.",
	})

	// CNIOperations counts CNI calls by operation (add, del); CNIErrors
	// those that failed.
	CNIOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "cni_operations_total",
		Help: "CNI network operations (add, del).",
	}, []string{"operation"})
	CNIErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "cni_errors_total",
		Help: "CNI network operations (add, del) that failed.",
	}, []string{"operation"})

	// OOMKills counts containers seen to exit OOMKilled.
	OOMKills = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "oom_kills_total",
		Help: "Containers that exited killed by the kernel's OOM killer.",
	})
)

// Operation names of the operation histograms and the CNI counters.
const (
	OpCreate  = "create"
	OpNetwork = "network"
	OpStart   = "start"
	OpStop    = "stop"
	OpRemove  = "remove"

	CNIAdd = "add"
	CNIDel = "del"
)

// Since observes the time since start in h; for a defer at the top of an
// operation.
func Since(h prometheus.Observer, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// Shims is what the shims hold, read at scrape time.
type Shims struct {
	// Running is the number of shims huskd talks to.
	Running int
	// RSSBytes is the sum of their resident memory.
	RSSBytes uint64
	// LogLines and LogBytes are the records and bytes the shims wrote to
	// container logs: live shims' own counts plus the last counts of
	// shims that have exited since huskd started.
	LogLines, LogBytes uint64
}

// shimCollector reads Shims from read at each scrape.
type shimCollector struct {
	read                              func(context.Context) Shims
	shims, memory, logLines, logBytes *prometheus.Desc
}

func newShimCollector(read func(context.Context) Shims) *shimCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
	}
	return &shimCollector{
		read:     read,
		shims:    d("shims", "Pod shims running."),
		memory:   d("shim_memory_bytes", "Resident memory of all pod shims."),
		logLines: d("container_log_lines_total", "Records the shims wrote to container log files."),
		logBytes: d("container_log_bytes_total", "Bytes the shims wrote to container log files."),
	}
}

func (c *shimCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.shims
	ch <- c.memory
	ch <- c.logLines
	ch <- c.logBytes
}

func (c *shimCollector) Collect(ch chan<- prometheus.Metric) {
	// Bounded: a stopped shim must not hang the scrape (each is asked
	// with its own shorter deadline).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := c.read(ctx)
	ch <- prometheus.MustNewConstMetric(c.shims, prometheus.GaugeValue, float64(s.Running))
	ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(s.RSSBytes))
	ch <- prometheus.MustNewConstMetric(c.logLines, prometheus.CounterValue, float64(s.LogLines))
	ch <- prometheus.MustNewConstMetric(c.logBytes, prometheus.CounterValue, float64(s.LogBytes))
}

// Registry returns a registry of every husk collector, Go's runtime and
// the process's, and the shims' figures read by shims at each scrape
// (nil: not collected).
func Registry(shims func(context.Context) Shims) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		CRIRequests, CRIRequestDuration,
		SandboxOperationDuration, ContainerOperationDuration,
		ImagePulls, ImagePullBytes, ImagePullsInProgress,
		CNIOperations, CNIErrors,
		OOMKills,
	)
	if shims != nil {
		r.MustRegister(newShimCollector(shims))
	}
	return r
}

// Serve serves r's metrics at /metrics on l until stop is called. huskd
// listens itself, first thing, so that an address it cannot serve stops
// it at start.
func Serve(l net.Listener, r *prometheus.Registry) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r, promhttp.HandlerOpts{
		// A scrape that fails to collect one family still gets the rest.
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are few; a slow one must not pile up.
		MaxRequestsInFlight: 4,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() { srv.Close() }
}
