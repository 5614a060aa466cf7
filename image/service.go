package image

import (
	"path/filepath"
)

// Service is the image side of huskd: a store and a puller over it.
type Service struct {
	*Store
	*Puller
}

// Open opens the image store under root (<root>/images) and a puller for it.
func Open(root string, opts PullOptions) (*Service, error) {
	s, err := OpenStore(filepath.Join(root, "images"))
	if err != nil {
		return nil, err
	}
	return &Service{Store: s, Puller: NewPuller(s, opts)}, nil
}
