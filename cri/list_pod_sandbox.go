package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/sandbox"
)

// matchSandbox applies a PodSandboxFilter: an ID (or unique prefix,
// resolved by the caller into id), a state and a label selector, all of
// which must match.
func matchSandbox(sb *sandbox.Sandbox, f *runtime.PodSandboxFilter, id string) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && sb.ID != id {
		return false
	}
	if st := f.GetState(); st != nil && sb.State.CRI() != st.GetState() {
		return false
	}
	labels := sb.Config.GetLabels()
	for k, v := range f.GetLabelSelector() {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (s *Server) listSandboxes(f *runtime.PodSandboxFilter) []*runtime.PodSandbox {
	return criSandboxes(s.sandboxes.List(), f)
}

// criSandboxes is the CRI form of the snapshots the filter selects.
func criSandboxes(all []*sandbox.Sandbox, f *runtime.PodSandboxFilter) []*runtime.PodSandbox {
	id := ""
	if f.GetId() != "" {
		list := make([]string, len(all))
		for i, sb := range all {
			list[i] = sb.ID
		}
		if id, _ = ids.Resolve(list, f.GetId()); id == "" {
			return nil // an unknown or ambiguous prefix matches nothing
		}
	}
	out := make([]*runtime.PodSandbox, 0, len(all))
	for _, sb := range all {
		if !matchSandbox(sb, f, id) {
			continue
		}
		out = append(out, &runtime.PodSandbox{
			Id:             sb.ID,
			Metadata:       sb.Config.GetMetadata(),
			State:          sb.State.CRI(),
			CreatedAt:      sb.CreatedAt.UnixNano(),
			Labels:         sb.Config.GetLabels(),
			Annotations:    sb.Config.GetAnnotations(),
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return out
}

// ListPodSandbox returns a list of PodSandboxes, filtered by ID (or a
// unique ID prefix), state and labels.
func (s *Server) ListPodSandbox(_ context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	if isZero(r.GetFilter()) {
		all := s.sandboxes.List()
		return s.podList.get(all, func() proto.Message {
			return &runtime.ListPodSandboxResponse{Items: criSandboxes(all, nil)}
		}).(*runtime.ListPodSandboxResponse), nil
	}
	return &runtime.ListPodSandboxResponse{Items: s.listSandboxes(r.GetFilter())}, nil
}
