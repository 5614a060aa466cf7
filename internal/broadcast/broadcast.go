// Package broadcast hands every value published to each subscriber, and
// never waits for one: a subscriber whose buffer is full when a value comes
// is dropped, and the publisher goes on. It owns the subscribers and the
// counts of what was dropped; what the values are is its users' business
// (huskd's container events, cri/get_container_events.go).
package broadcast

import "sync"

// Broadcaster fans values out to subscribers. The zero value is ready to
// use; it must not be copied.
type Broadcaster[T any] struct {
	mu     sync.Mutex
	subs   map[*Subscriber[T]]struct{}
	closed bool
	stats  Stats
}

// Stats are what a broadcaster has done since it was made.
type Stats struct {
	// Subscribers is how many subscribers there are now.
	Subscribers int `json:"subscribers"`
	// Published is how many values were published.
	Published uint64 `json:"published"`
	// DroppedSubscribers is how many subscribers were dropped for being
	// too slow.
	DroppedSubscribers uint64 `json:"droppedSubscribers"`
	// DroppedEvents is how many values those subscribers never got: the
	// one that did not fit and those left unread in their buffers.
	DroppedEvents uint64 `json:"droppedEvents"`
}

// Subscriber receives the values published after it subscribed, in the
// order they were published, until it is dropped or unsubscribed.
type Subscriber[T any] struct {
	c    chan T
	done chan struct{} // closed when dropped or when the broadcaster closes
	// Set before done is closed; read after.
	dropped   bool
	delivered uint64 // values that fitted in c (mu)
}

// C is the subscriber's values.
func (s *Subscriber[T]) C() <-chan T { return s.c }

// Done is closed when the subscriber was dropped for being too slow (its
// buffer emptied), or the broadcaster closed; C then has nothing more to
// read.
func (s *Subscriber[T]) Done() <-chan struct{} { return s.done }

// Dropped says, once Done is closed, whether the subscriber was dropped
// for being too slow (else the broadcaster closed), and how many values
// it had been handed before.
func (s *Subscriber[T]) Dropped() (bool, uint64) { return s.dropped, s.delivered }

// Subscribe adds a subscriber that may fall buffer values behind before it
// is dropped. buffer must be positive. After Close, the subscriber is done
// at once.
func (b *Broadcaster[T]) Subscribe(buffer int) *Subscriber[T] {
	s := &Subscriber[T]{c: make(chan T, buffer), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.done)
		return s
	}
	if b.subs == nil {
		b.subs = map[*Subscriber[T]]struct{}{}
	}
	b.subs[s] = struct{}{}
	return s
}

// Unsubscribe removes s; it is no error if s was dropped already.
func (b *Broadcaster[T]) Unsubscribe(s *Subscriber[T]) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Publish hands v to every subscriber without waiting for any. A
// subscriber whose buffer is full is dropped. Values published by one
// goroutine reach every subscriber in that order; concurrent publishers
// are ordered by the broadcaster's lock.
func (b *Broadcaster[T]) Publish(v T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Published++
	for s := range b.subs {
		select {
		case s.c <- v:
			s.delivered++
		default:
			delete(b.subs, s)
			b.stats.DroppedSubscribers++
			b.stats.DroppedEvents++
			// Its buffer is let go now, not when (if ever) its reader
			// comes back.
			for len(s.c) > 0 {
				<-s.c
				b.stats.DroppedEvents++
			}
			s.dropped = true
			close(s.done)
		}
	}
}

// Close ends every subscription (Done closes, not dropped) and refuses
// new ones: the publisher is going away.
func (b *Broadcaster[T]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		close(s.done)
	}
	b.subs = nil
}

// Stats returns the broadcaster's counts.
func (b *Broadcaster[T]) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Subscribers = len(b.subs)
	return st
}
