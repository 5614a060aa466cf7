package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletAPIVersion is the "version" field every CRI runtime reports; it
// predates the runtime_api_version field and kubelet ignores it.
const kubeletAPIVersion = "0.1.0"

// Version returns the runtime name, runtime version, and runtime API version.
func (s *Server) Version(_ context.Context, _ *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.opts.Version,
		RuntimeApiVersion: "v1",
	}, nil
}
