package cri

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
	"github.com/huskrt/husk/internal/ids"
)

// matchContainer applies a ContainerFilter: ID (or unique prefix,
// resolved into id), state, pod (ID or unique prefix, resolved into pod)
// and labels.
func matchContainer(c *container.Container, f *runtime.ContainerFilter, id, pod string) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && c.ID != id {
		return false
	}
	if f.GetPodSandboxId() != "" && c.PodID != pod {
		return false
	}
	if st := f.GetState(); st != nil && criState(c.State) != st.GetState() {
		return false
	}
	labels := c.Config.GetLabels()
	for k, v := range f.GetLabelSelector() {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (s *Server) filterContainers(f *runtime.ContainerFilter) []*container.Container {
	all := s.containers.List()
	id, pod := "", ""
	var ok bool
	if f.GetId() != "" {
		list := make([]string, len(all))
		for i, c := range all {
			list[i] = c.ID
		}
		if id, ok = ids.Resolve(list, f.GetId()); !ok {
			return nil // an unknown or ambiguous prefix matches nothing
		}
	}
	if f.GetPodSandboxId() != "" {
		var pods []string
		for _, sb := range s.sandboxes.List() {
			pods = append(pods, sb.ID)
		}
		if pod, ok = ids.Resolve(pods, f.GetPodSandboxId()); !ok {
			return nil
		}
	}
	out := all[:0:0]
	for _, c := range all {
		if matchContainer(c, f, id, pod) {
			out = append(out, c)
		}
	}
	return out
}

func criContainer(c *container.Container) *runtime.Container {
	return &runtime.Container{
		Id:           c.ID,
		PodSandboxId: c.PodID,
		Metadata:     c.Config.GetMetadata(),
		Image:        statusImage(c),
		ImageRef:     c.ImageID,
		ImageId:      c.ImageID,
		State:        criState(c.State),
		CreatedAt:    nanos(c.CreatedAt),
		Labels:       c.Config.GetLabels(),
		Annotations:  c.Config.GetAnnotations(),
	}
}

// ListContainers lists all containers by filters: ID or unique prefix,
// state, pod sandbox and labels.
func (s *Server) ListContainers(_ context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	if isZero(r.GetFilter()) {
		all := s.containers.List()
		return s.containerList.get(all, func() proto.Message {
			out := make([]*runtime.Container, len(all))
			for i, c := range all {
				out[i] = criContainer(c)
			}
			return &runtime.ListContainersResponse{Containers: out}
		}).(*runtime.ListContainersResponse), nil
	}
	cs := s.filterContainers(r.GetFilter())
	out := make([]*runtime.Container, len(cs))
	for i, c := range cs {
		out[i] = criContainer(c)
	}
	return &runtime.ListContainersResponse{Containers: out}, nil
}

// StreamContainers returns the same items as ListContainers, in batches of
// at least one item; each item appears once, then the stream ends.
func (s *Server) StreamContainers(r *runtime.StreamContainersRequest, stream grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	return sendBatches(s.filterContainers(r.GetFilter()), stream.Send, func(b []*container.Container) *runtime.StreamContainersResponse {
		out := make([]*runtime.Container, len(b))
		for i, c := range b {
			out[i] = criContainer(c)
		}
		return &runtime.StreamContainersResponse{Containers: out}
	})
}
