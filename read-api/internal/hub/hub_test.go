package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
)

// fakeBus confirms every subscription at once and records what the hub
// asked for, with the (bubble) time of each Unsubscribe.
type fakeBus struct {
	mu         sync.Mutex
	subscribes map[string]int
	unsubAt    map[string][]time.Time
}

func newFakeBus() *fakeBus {
	return &fakeBus{subscribes: map[string]int{}, unsubAt: map[string][]time.Time{}}
}

func (b *fakeBus) Subscribe(_ context.Context, topics ...string) (notification.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range topics {
		b.subscribes[t]++
	}
	return confirmed{}, nil
}

// confirmed is a subscription confirmed at once.
type confirmed struct{}

func (confirmed) Wait(context.Context) error { return nil }

func (b *fakeBus) Unsubscribe(_ context.Context, topics ...string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range topics {
		b.unsubAt[t] = append(b.unsubAt[t], time.Now())
	}
	return nil
}

func (b *fakeBus) counts(topic string) (subs, unsubs int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribes[topic], len(b.unsubAt[topic])
}

// member records the events pushed to it; Push may come from any goroutine.
type member struct {
	mu     sync.Mutex
	events []*Event
}

func (m *member) Push(ev *Event) {
	m.mu.Lock()
	m.events = append(m.events, ev)
	m.mu.Unlock()
}

func (m *member) Resync(string) {}

func (m *member) got() []*Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

func message(topic string, seq uint64) notification.Message {
	return notification.Message{
		Topic: topic, Pos: notification.Position{Epoch: 1, Seq: seq, Link: 7}, Type: "t",
		Envelope: []byte(`{"id":"x","topic":"` + topic + `"}`),
	}
}

// Join returns only once Redis's subscribe confirmation has been read, for
// the member that caused the SUBSCRIBE and for one joining the pending
// topic after it. The confirmation is held back by starting the
// subscriber's read loop late: SUBSCRIBE has reached Redis, its reply sits
// unread on the connection.
func TestJoinWaitsForConfirmation(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	keys := redisbus.Keys{Prefix: "hubtest:"}
	sub := redisbus.NewSubscriber(r.Client(), keys, false, zap.NewNop())
	h := New(sub, zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	topics := []string{"seller:1"}
	joined := make(chan error, 2)
	go func() { joined <- h.Join(ctx, &member{}, topics) }()
	ch := keys.Channel("seller:1")
	deadline := time.Now().Add(5 * time.Second)
	for r.Client().PubSubNumSub(ctx, ch).Val()[ch] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("SUBSCRIBE never reached Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	go func() { joined <- h.Join(ctx, &member{}, topics) }()
	select {
	case err := <-joined:
		t.Fatalf("Join returned (%v) before the confirmation was read", err)
	case <-time.After(300 * time.Millisecond):
	}

	done := make(chan struct{})
	go func() { _ = sub.Run(ctx, h); close(done) }()
	defer func() { cancel(); <-done }()
	for i := range 2 {
		select {
		case err := <-joined:
			if err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("join %d still blocked after the confirmation was read", i)
		}
	}
	if got := h.Subscribed(); got != 1 {
		t.Errorf("Subscribed() = %d, want 1", got)
	}
}

// Members share a topic's subscription: one leaving keeps it (and the other
// keeps receiving) for good; the last leaving drops it after
// UnsubscribeAfter and within the 5 s docs/api.md promises.
func TestTopicRefCounting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		bus, h, ctx := runningHub(t)

		topics := []string{"seller:1"}
		a, b := &member{}, &member{}
		for _, m := range []*member{a, b} {
			if err := h.Join(ctx, m, topics); err != nil {
				t.Fatal(err)
			}
		}
		if subs, _ := bus.counts("seller:1"); subs != 1 {
			t.Fatalf("%d SUBSCRIBEs for two members of one topic, want 1", subs)
		}

		h.Leave(a, topics)
		time.Sleep(3 * UnsubscribeAfter) // long past the janitor's deadline
		synctest.Wait()
		if _, unsubs := bus.counts("seller:1"); unsubs != 0 || h.Subscribed() != 1 {
			t.Fatalf("one member left of two: %d UNSUBSCRIBEs, Subscribed() = %d; want 0 and 1", unsubs, h.Subscribed())
		}
		h.Deliver(message("seller:1", 1))
		if len(b.got()) != 1 || len(a.got()) != 0 {
			t.Fatalf("after a left: b got %d events, a got %d; want 1 and 0", len(b.got()), len(a.got()))
		}

		left := time.Now()
		h.Leave(b, topics)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		bus.mu.Lock()
		at := slices.Clone(bus.unsubAt["seller:1"])
		bus.mu.Unlock()
		if len(at) != 1 {
			t.Fatalf("%d UNSUBSCRIBEs within 5 s of the last member leaving, want 1", len(at))
		}
		if d := at[0].Sub(left); d < UnsubscribeAfter || d > 5*time.Second {
			t.Errorf("unsubscribed %s after the last member left, want within [%s, 5s]", d, UnsubscribeAfter)
		}
		if h.Subscribed() != 0 || h.Topics() != 0 {
			t.Errorf("after unsubscribing: Subscribed() = %d, Topics() = %d; want 0, 0", h.Subscribed(), h.Topics())
		}

		// The topic is gone for good: a new member subscribes it again.
		c := &member{}
		if err := h.Join(ctx, c, topics); err != nil {
			t.Fatal(err)
		}
		if subs, _ := bus.counts("seller:1"); subs != 2 {
			t.Errorf("rejoin after unsubscribe: %d SUBSCRIBEs in all, want 2", subs)
		}
		h.Deliver(message("seller:1", 2))
		if len(c.got()) != 1 || len(b.got()) != 1 {
			t.Errorf("after rejoin: new member got %d events, departed one %d in all; want 1 and 1", len(c.got()), len(b.got()))
		}
	})
}

// A message becomes one Event, the same one for every member of its topic,
// and nothing for members of other topics.
func TestDeliverSharesOneEvent(t *testing.T) {
	t.Parallel()
	h := New(newFakeBus(), zap.NewNop())
	ms := []*member{{}, {}, {}}
	for _, m := range ms {
		if err := h.Join(t.Context(), m, []string{"seller:1", "broadcast"}); err != nil {
			t.Fatal(err)
		}
	}
	other := &member{}
	if err := h.Join(t.Context(), other, []string{"seller:2"}); err != nil {
		t.Fatal(err)
	}

	h.Deliver(message("seller:1", 1))
	h.Deliver(message("seller:1", 2))
	evs := ms[0].got()
	if len(evs) != 2 {
		t.Fatalf("member 0 got %d events, want 2", len(evs))
	}
	for i, m := range ms[1:] {
		if got := m.got(); len(got) != 2 || got[0] != evs[0] || got[1] != evs[1] {
			t.Fatalf("member %d got %v, want the same two events as member 0 (%v)", i+1, got, evs)
		}
	}
	if evs[0] == evs[1] {
		t.Fatal("two messages share one Event")
	}
	for i, ev := range evs {
		want := message("seller:1", uint64(i+1))
		if ev.Topic != want.Topic || ev.Pos != want.Pos || len(ev.Frame) == 0 {
			t.Errorf("event %d: topic %q pos %+v frame %q; want %q %+v", i, ev.Topic, ev.Pos, ev.Frame, want.Topic, want.Pos)
		}
	}
	if got := other.got(); len(got) != 0 {
		t.Errorf("a member of seller:2 got %d events of seller:1", len(got))
	}
}

// runningHub starts a hub on a fake bus, with its janitor running until
// the test ends; ctx is the test's.
func runningHub(t *testing.T) (*fakeBus, *Hub, context.Context) {
	bus := newFakeBus()
	h := New(bus, zap.NewNop())
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go h.Run(ctx)
	return bus, h, ctx
}

// idleTopics is the size of the janitor's idle set.
func idleTopics(h *Hub) int {
	return h.count(func(s *shard) int { return len(s.idle) })
}

// The janitor looks only at topics without members: a topic enters its
// idle set when its last member leaves and leaves it when one joins. An
// idle topic is unsubscribed after UnsubscribeAfter; one joined again
// within it is not, nor is any topic with members.
func TestJanitorVisitsIdleTopicsOnly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		bus, h, ctx := runningHub(t)

		busy := make([]string, 100)
		for i := range busy {
			busy[i] = fmt.Sprintf("seller:busy-%d", i)
		}
		a, b, c := &member{}, &member{}, &member{}
		for _, j := range []struct {
			m      *member
			topics []string
		}{{a, busy}, {b, []string{"seller:gone"}}, {c, []string{"seller:back"}}} {
			if err := h.Join(ctx, j.m, j.topics); err != nil {
				t.Fatal(err)
			}
		}
		if n := idleTopics(h); n != 0 {
			t.Fatalf("%d idle topics while every topic has a member, want 0", n)
		}
		h.Leave(b, []string{"seller:gone"})
		h.Leave(c, []string{"seller:back"})
		if n := idleTopics(h); n != 2 {
			t.Fatalf("%d idle topics after two topics lost their member, want 2", n)
		}
		time.Sleep(UnsubscribeAfter / 2)
		if err := h.Join(ctx, c, []string{"seller:back"}); err != nil {
			t.Fatal(err)
		}
		if n := idleTopics(h); n != 1 {
			t.Fatalf("%d idle topics after one was joined again, want 1", n)
		}

		time.Sleep(3 * UnsubscribeAfter)
		synctest.Wait()
		if _, unsubs := bus.counts("seller:gone"); unsubs != 1 {
			t.Errorf("the idle topic: %d UNSUBSCRIBEs, want 1", unsubs)
		}
		for _, topic := range append([]string{"seller:back"}, busy...) {
			if subs, unsubs := bus.counts(topic); subs != 1 || unsubs != 0 {
				t.Fatalf("%s, with a member: %d SUBSCRIBEs, %d UNSUBSCRIBEs; want 1 and 0", topic, subs, unsubs)
			}
		}
		if n, topics := idleTopics(h), h.Topics(); n != 0 || topics != len(busy)+1 {
			t.Errorf("after the janitor: %d idle, %d topics; want 0 and %d", n, topics, len(busy)+1)
		}
	})
}

// heldBus holds every Unsubscribe until released and records whether its
// context had ended by then.
type heldBus struct {
	*fakeBus
	called  chan struct{}
	release chan struct{}
	ctxErr  chan error
}

func (b *heldBus) Unsubscribe(ctx context.Context, topics ...string) error {
	close(b.called)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	b.ctxErr <- ctx.Err()
	return b.fakeBus.Unsubscribe(ctx, topics...)
}

// When Run's context ends during the janitor's UNSUBSCRIBE, the command is
// not cut short and Run returns only after it: its owner closes the bus
// after Run has returned, so no UNSUBSCRIBE meets a closed connection.
func TestRunEndsAfterItsUnsubscribe(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		bus := &heldBus{fakeBus: newFakeBus(), called: make(chan struct{}), release: make(chan struct{}), ctxErr: make(chan error, 1)}
		h := New(bus, zap.NewNop())
		m := &member{}
		if err := h.Join(t.Context(), m, []string{"seller:1"}); err != nil {
			t.Fatal(err)
		}
		h.Leave(m, []string{"seller:1"})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { h.Run(ctx); close(done) }()
		<-bus.called
		cancel()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Run returned while its UNSUBSCRIBE was still on the way")
		default:
		}
		close(bus.release)
		if err := <-bus.ctxErr; err != nil {
			t.Errorf("the UNSUBSCRIBE's context ended with Run's: %v", err)
		}
		<-done
	})
}
