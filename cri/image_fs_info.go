package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo returns what the image store uses: bytes and inodes of its
// blobs and unpacked layers. kubelet's image garbage collection reads it.
func (s *Server) ImageFsInfo(_ context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	bytes, inodes := s.images.Usage()
	return &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.images.Dir()},
		UsedBytes:  &runtime.UInt64Value{Value: uint64(bytes)},
		InodesUsed: &runtime.UInt64Value{Value: uint64(inodes)},
	}}}, nil
}
