package cri

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/container"
)

func TestStatusImage(t *testing.T) {
	const id = "sha256:d622e25dd061151330252a7a91c774ffb4d48c34ad7fef1f3af1e737c0ef17d6"
	for _, c := range []struct {
		image, user, want string
	}{
		// kubelet: created from the ID, the pod spec's name beside it.
		{id, "registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"},
		// crictl, critest: the name only.
		{"busybox:1.37", "", "busybox:1.37"},
		{id, "", id},
	} {
		ctr := &container.Container{Config: &runtime.ContainerConfig{Image: &runtime.ImageSpec{Image: c.image, UserSpecifiedImage: c.user}}}
		got := statusImage(ctr)
		if got.GetImage() != c.want || got.GetUserSpecifiedImage() != c.user {
			t.Errorf("statusImage(%q, user %q) = %q (user %q), want %q", c.image, c.user, got.GetImage(), got.GetUserSpecifiedImage(), c.want)
		}
	}
}
