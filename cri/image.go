package cri

import (
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/image"
)

// criImage is an image as the CRI shows it. Its ID is the config digest,
// the same value PullImage returns as image_ref.
func criImage(img *image.Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &runtime.ImageSpec{Image: img.ID},
		Pinned:      img.Pinned,
	}
	uid, username := image.UserOf(img.User)
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = username
	return out
}
