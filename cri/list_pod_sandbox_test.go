package cri

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/ids"
	"github.com/huskrt/husk/sandbox"
)

func TestSandboxFilters(t *testing.T) {
	mk := func(id string, st sandbox.State, labels map[string]string) *sandbox.Sandbox {
		return &sandbox.Sandbox{ID: id, State: st, Config: &runtime.PodSandboxConfig{Labels: labels}}
	}
	all := []*sandbox.Sandbox{
		mk("aaa111", sandbox.StateReady, map[string]string{"app": "web", "tier": "front"}),
		mk("aaa222", sandbox.StateNotReady, map[string]string{"app": "web"}),
		mk("bbb333", sandbox.StateReady, map[string]string{"app": "db"}),
	}
	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	notReady := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}
	cases := []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{"nil filter", nil, []string{"aaa111", "aaa222", "bbb333"}},
		{"full ID", &runtime.PodSandboxFilter{Id: "bbb333"}, []string{"bbb333"}},
		{"unique prefix", &runtime.PodSandboxFilter{Id: "aaa1"}, []string{"aaa111"}},
		{"ambiguous prefix matches nothing", &runtime.PodSandboxFilter{Id: "aaa"}, nil},
		{"unknown ID", &runtime.PodSandboxFilter{Id: "zzz"}, nil},
		{"ready", &runtime.PodSandboxFilter{State: ready}, []string{"aaa111", "bbb333"}},
		{"not ready", &runtime.PodSandboxFilter{State: notReady}, []string{"aaa222"}},
		{"label", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web"}}, []string{"aaa111", "aaa222"}},
		{"all labels must match", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web", "tier": "front"}}, []string{"aaa111"}},
		{"label value differs", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "cache"}}, nil},
		{"state and label", &runtime.PodSandboxFilter{State: ready, LabelSelector: map[string]string{"app": "web"}}, []string{"aaa111"}},
		{"prefix and state disagree", &runtime.PodSandboxFilter{Id: "aaa2", State: ready}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := ""
			if c.filter.GetId() != "" {
				list := []string{}
				for _, sb := range all {
					list = append(list, sb.ID)
				}
				id, _ = ids.Resolve(list, c.filter.GetId())
			}
			var got []string
			for _, sb := range all {
				if (c.filter.GetId() == "" || id != "") && matchSandbox(sb, c.filter, id) {
					got = append(got, sb.ID)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}
