package shim

import (
	"os"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// fanout copies a container's output, as the log reads it, to the
// descriptors of attached callers. A slow caller must never hold up the
// log or the container: each subscriber has its own bounded queue, and
// what does not fit is dropped for that subscriber alone.
type fanout struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one attached descriptor and the stream it wants.
type subscriber struct {
	stream string
	f      *os.File
	queue  chan []byte
	done   chan struct{}
	once   sync.Once
}

// maxQueued bounds the chunks waiting for one subscriber (each at most a
// log read, 32 KiB or so).
const maxQueued = 64

// writer is the io.Writer that tees one stream of the container into the
// fanout; it never fails, so that it cannot break the log's copy.
func (o *fanout) writer(stream string) *streamTee { return &streamTee{o: o, stream: stream} }

type streamTee struct {
	o      *fanout
	stream string
}

func (t *streamTee) Write(p []byte) (int, error) {
	t.o.mu.Lock()
	defer t.o.mu.Unlock()
	for s := range t.o.subs {
		if s.stream != t.stream {
			continue
		}
		select {
		case s.queue <- append([]byte(nil), p...):
		default:
			klog.V(2).InfoS("Attached caller too slow; output dropped for it", "bytes", len(p))
		}
	}
	return len(p), nil
}

// subscribe starts copying stdout and stderr (either may be nil; a tty's
// single stream is stdout) to the given descriptors.
func (o *fanout) subscribe(stdout, stderr *os.File) []*subscriber {
	var subs []*subscriber
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.subs == nil {
		o.subs = map[*subscriber]struct{}{}
	}
	for stream, f := range map[string]*os.File{StreamStdout: stdout, StreamStderr: stderr} {
		if f == nil {
			continue
		}
		s := &subscriber{stream: stream, f: f, queue: make(chan []byte, maxQueued), done: make(chan struct{})}
		go s.run()
		o.subs[s] = struct{}{}
		subs = append(subs, s)
	}
	return subs
}

func (s *subscriber) run() {
	defer close(s.done)
	for b := range s.queue {
		if _, err := s.f.Write(b); err != nil {
			// The caller went away; drain until unsubscribed.
			for range s.queue {
			}
			return
		}
	}
}

// unsubscribe stops the copies, after what was queued has been written.
// Safe to call more than once.
func (o *fanout) unsubscribe(subs []*subscriber) {
	o.mu.Lock()
	for _, s := range subs {
		if _, ok := o.subs[s]; ok {
			delete(o.subs, s)
			s.once.Do(func() { close(s.queue) })
		}
	}
	o.mu.Unlock()
	for _, s := range subs {
		// A caller that stopped reading must not hold the session.
		_ = s.f.SetWriteDeadline(time.Now().Add(time.Second))
		<-s.done
	}
}
