package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container/metrics"
	"github.com/huskrt/husk/sandbox"
)

// ListMetricDescriptors gets the descriptors for the metrics that
// ListPodSandboxMetrics returns: cadvisor's container_* families, labelled
// as kubelet's /metrics/cadvisor labels them.
func (s *Server) ListMetricDescriptors(_ context.Context, _ *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{Descriptors: metrics.Descriptors()}, nil
}

// podMetrics reads the metrics of every pod, each at the time it is read;
// concurrent calls share one read (see shared). The result must not be
// changed.
func (s *Server) podMetrics() []*runtime.PodSandboxMetrics {
	return s.shared("ListPodSandboxMetrics", nil, func() any { return s.readPodMetrics() }).([]*runtime.PodSandboxMetrics)
}

func (s *Server) readPodMetrics() []*runtime.PodSandboxMetrics {
	byPod := map[string][]metrics.Container{}
	for _, c := range s.containers.List() {
		byPod[c.PodID] = append(byPod[c.PodID], metrics.Container{
			ID: c.ID, Name: c.Config.GetMetadata().GetName(), Image: c.ImageID,
			CgroupPath: c.CgroupPath, UpperDir: s.containers.UpperDir(c.ID),
			StartedAt: c.State.StartedAt, Resources: c.Resources,
		})
	}
	var out []*runtime.PodSandboxMetrics
	for _, sb := range s.sandboxes.List() {
		p := metrics.Pod{ID: sb.ID, Name: sb.Metadata().GetName(), Namespace: sb.Metadata().GetNamespace(), Containers: byPod[sb.ID]}
		if sb.State == sandbox.StateReady && sb.Namespaces[sandbox.NSNet] != "" {
			p.NetPID = sb.PausePID
		}
		out = append(out, metrics.PodMetrics(p, time.Now()))
	}
	return out
}

// ListPodSandboxMetrics gets the metrics of every pod and its containers.
func (s *Server) ListPodSandboxMetrics(_ context.Context, _ *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: s.podMetrics()}, nil
}

// StreamPodSandboxMetrics returns the same items as ListPodSandboxMetrics,
// in batches of at least one item; each item appears once.
func (s *Server) StreamPodSandboxMetrics(_ *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	return sendBatches(s.podMetrics(), stream.Send, func(b []*runtime.PodSandboxMetrics) *runtime.StreamPodSandboxMetricsResponse {
		return &runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: b}
	})
}
