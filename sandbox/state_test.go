package sandbox

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, st := range []State{StateCreating, StateReady, StateNotReady} {
		in := &Sandbox{
			ID: "abc", Name: "p_n_u_1", State: st, CreatedAt: time.Unix(100, 5).UTC(),
			Config: &runtime.PodSandboxConfig{
				Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u", Attempt: 1},
				Labels:   map[string]string{"a": "b"},
			},
			RuntimeHandler: "husk", ShimPID: 10, PausePID: 11, CgroupPath: "/x/abc",
			Namespaces: map[string]string{NSNet: "/s/net"}, ShmPath: "/s/shm",
			PidMode: runtime.NamespaceMode_NODE, Reason: "stopped", Stopped: true,
			IPs: []string{"10.88.0.5", "fd00::5"}, NetworkDown: true,
		}
		b, err := in.marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := unmarshalSandbox(b)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in.Config, out.Config) {
			t.Errorf("config %v, want %v", out.Config, in.Config)
		}
		in.Config, out.Config = nil, nil
		if !reflect.DeepEqual(in, out) {
			t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
		}
	}
	if _, err := unmarshalSandbox([]byte(`{"version":99}`)); err == nil {
		t.Error("a record of an unknown version was accepted")
	}
}
