package cri

import (
	"slices"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// listCache keeps the last unfiltered list answer, built from snapshots,
// with its wire encoding. kubelet lists every pod and every container
// every second, and between changes the answer is the same: snapshots are
// never modified, only replaced, so the same snapshot pointers in the same
// order give the same answer, and the encoding is reused too.
type listCache[S any] struct {
	mu   sync.Mutex
	keys []*S
	resp proto.Message
	wire []byte // resp encoded, once a caller needed it
}

// get returns the answer for the snapshots keys, building it when they
// changed. The answer is shared: nothing may modify it.
func (c *listCache[S]) get(keys []*S, build func() proto.Message) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resp == nil || !slices.Equal(keys, c.keys) {
		c.keys, c.resp, c.wire = keys, build(), nil
	}
	return c.resp
}

// encoded returns the wire form of m if m is the kept answer.
func (c *listCache[S]) encoded(m proto.Message) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resp == nil || m != c.resp {
		return nil, false, nil
	}
	if c.wire == nil {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, true, err
		}
		c.wire = b
	}
	return c.wire, true, nil
}

// encodedCache gives the kept encoding of a message it keeps (ok false for
// any other message).
type encodedCache interface {
	encoded(m proto.Message) (wire []byte, ok bool, err error)
}

// cachingCodec is gRPC's proto codec, except that a kept list answer goes
// out in its kept encoding.
type cachingCodec struct {
	encoding.CodecV2
	caches []encodedCache
}

func (c cachingCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		for _, cache := range c.caches {
			if b, ok, err := cache.encoded(m); ok {
				if err != nil {
					return nil, err
				}
				return mem.BufferSlice{mem.SliceBuffer(b)}, nil
			}
		}
	}
	return c.CodecV2.Marshal(v)
}

// isZero tells a filter that selects everything (absent or empty).
func isZero(f proto.Message) bool {
	return f == nil || proto.Size(f) == 0
}
