package cri

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListCache(t *testing.T) {
	type snap struct{ id string }
	a, b, b2 := &snap{"a"}, &snap{"b"}, &snap{"b"} // b2: b's next snapshot
	var c listCache[snap]
	builds := 0
	build := func(keys []*snap) func() proto.Message {
		return func() proto.Message {
			builds++
			out := &runtime.ListContainersResponse{}
			for _, k := range keys {
				out.Containers = append(out.Containers, &runtime.Container{Id: k.id})
			}
			return out
		}
	}
	first := c.get([]*snap{a, b}, build([]*snap{a, b}))
	if again := c.get([]*snap{a, b}, build([]*snap{a, b})); again != first || builds != 1 {
		t.Errorf("same snapshots: %d builds, same answer %t", builds, again == first)
	}
	for _, keys := range [][]*snap{{a, b2}, {a}, {b2, a}, {}} {
		before := builds
		if got := c.get(keys, build(keys)); builds != before+1 || len(got.(*runtime.ListContainersResponse).Containers) != len(keys) {
			t.Errorf("snapshots %v: not rebuilt", keys)
		}
	}

	codec := cachingCodec{CodecV2: encoding.GetCodecV2("proto"), caches: []encodedCache{&c}}
	kept := c.get([]*snap{a, b}, build([]*snap{a, b}))
	want, _ := proto.Marshal(kept)
	for i := 0; i < 2; i++ {
		got, err := codec.Marshal(kept)
		if err != nil || !bytes.Equal(got.Materialize(), want) {
			t.Errorf("kept answer encoded as %x, %v; want %x", got.Materialize(), err, want)
		}
	}
	other := &runtime.ListContainersResponse{Containers: []*runtime.Container{{Id: "other"}}}
	got, err := codec.Marshal(other)
	wantOther, _ := proto.Marshal(other)
	if err != nil || !bytes.Equal(got.Materialize(), wantOther) {
		t.Errorf("another message: %x, %v; want %x", got.Materialize(), err, wantOther)
	}
	// A rebuilt answer is encoded afresh.
	rebuilt := c.get([]*snap{b2}, build([]*snap{b2}))
	got, _ = codec.Marshal(rebuilt)
	if want, _ := proto.Marshal(rebuilt); !bytes.Equal(got.Materialize(), want) {
		t.Error("the encoding of a replaced answer was served")
	}
}

func TestIsZero(t *testing.T) {
	var nilFilter *runtime.ContainerFilter
	for _, c := range []struct {
		f    proto.Message
		want bool
	}{
		{nilFilter, true},
		{&runtime.ContainerFilter{}, true},
		{&runtime.ContainerFilter{LabelSelector: map[string]string{}}, true},
		{&runtime.ContainerFilter{Id: "x"}, false},
		{&runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{}}, false},
	} {
		if got := isZero(c.f); got != c.want {
			t.Errorf("isZero(%v) = %t", c.f, got)
		}
	}
}
