package broadcast

import (
	"testing"
	"time"
)

func TestOrderAndFanOut(t *testing.T) {
	var b Broadcaster[int]
	a, c := b.Subscribe(10), b.Subscribe(10)
	for i := range 5 {
		b.Publish(i)
	}
	for _, s := range []*Subscriber[int]{a, c} {
		for i := range 5 {
			if v := <-s.C(); v != i {
				t.Fatalf("got %d, want %d", v, i)
			}
		}
	}
	if st := b.Stats(); st.Subscribers != 2 || st.Published != 5 || st.DroppedSubscribers != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSlowSubscriberDropped(t *testing.T) {
	var b Broadcaster[int]
	slow, fast := b.Subscribe(3), b.Subscribe(3)
	done := make(chan struct{})
	go func() {
		// Never waits for the slow one, which reads nothing.
		for i := range 100 {
			b.Publish(i)
			if v := <-fast.C(); v != i {
				t.Errorf("fast got %d, want %d", v, i)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("the slow subscriber was not dropped")
	}
	if dropped, n := slow.Dropped(); !dropped || n != 3 {
		t.Errorf("slow: dropped %v after %d values, want true after 3", dropped, n)
	}
	select {
	case <-fast.Done():
		t.Fatal("the fast subscriber was dropped")
	default:
	}
	// 3 unread in its buffer and the 4th that did not fit.
	if st := b.Stats(); st.Subscribers != 1 || st.DroppedSubscribers != 1 || st.DroppedEvents != 4 || st.Published != 100 {
		t.Errorf("stats %+v, want 1 subscriber, 1 dropped with 4 events, 100 published", st)
	}
}

func TestUnsubscribeAndClose(t *testing.T) {
	var b Broadcaster[int]
	a, c := b.Subscribe(1), b.Subscribe(1)
	b.Unsubscribe(a)
	b.Publish(1)
	b.Publish(2) // a is gone: it is not dropped for missing these
	if st := b.Stats(); st.DroppedSubscribers != 1 || st.Subscribers != 0 {
		t.Errorf("stats %+v, want c dropped and a unsubscribed", st)
	}
	b.Unsubscribe(c) // dropped already: no error
	d := b.Subscribe(1)
	b.Close()
	<-d.Done()
	if dropped, _ := d.Dropped(); dropped {
		t.Error("a subscriber ended by Close reads as dropped")
	}
	e := b.Subscribe(1)
	select {
	case <-e.Done():
	default:
		t.Error("Subscribe after Close is not done at once")
	}
	b.Publish(3) // no subscriber, nothing blocks
}
