package cri

import (
	"context"
	"encoding/json"
	"errors"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/huskrt/husk/internal/errdefs"
)

// imageInfo is the verbose "info" of ImageStatus: the manifest and config
// as the registry sent them, and where each layer is unpacked.
type imageInfo struct {
	ID        string            `json:"id"`
	Manifest  json.RawMessage   `json:"manifest"`
	ImageSpec json.RawMessage   `json:"imageSpec"` // the config, under containerd's name
	Index     string            `json:"index,omitempty"`
	Layers    []imageInfoLayer  `json:"layers"`
	Pulled    string            `json:"pulled"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type imageInfoLayer struct {
	Digest  string `json:"digest"`
	DiffID  string `json:"diffID"`
	ChainID string `json:"chainID"`
	Size    int64  `json:"size"`
	Path    string `json:"path"`
}

// ImageStatus returns the status of the image. If the image is not
// present, it returns a response with Image unset, not an error.
func (s *Server) ImageStatus(_ context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	spec := r.GetImage().GetImage()
	if spec == "" {
		return nil, errdefs.InvalidArgument("image.image", "must not be empty")
	}
	img, err := s.images.Resolve(spec)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: criImage(img)}
	if !r.GetVerbose() {
		return resp, nil
	}
	manifest, err := s.images.ReadBlob(img.Manifest)
	if err != nil {
		return nil, err
	}
	config, err := s.images.ReadBlob(img.ID)
	if err != nil {
		return nil, err
	}
	info := imageInfo{ID: img.ID, Manifest: manifest, ImageSpec: config, Index: img.Index, Pulled: img.Pulled.UTC().Format("2006-01-02T15:04:05Z")}
	for _, l := range img.Layers {
		info.Layers = append(info.Layers, imageInfoLayer{
			Digest: l.Digest, DiffID: l.DiffID, ChainID: l.ChainID, Size: l.Size, Path: s.images.LayerDir(l.ChainID),
		})
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	resp.Info = map[string]string{"info": string(b)}
	return resp, nil
}
