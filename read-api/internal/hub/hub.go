package hub

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"notify/pkg/notification"
)

// Bus is the pub/sub side of the hub. The hub gives it every message
// through Deliver, and the topics to read from history after a lost
// connection through Resubscribed.
type Bus interface {
	// Subscribe sends the subscription and returns at once, so the hub
	// orders its SUBSCRIBE and UNSUBSCRIBE writes under its own lock
	// without holding it for a round trip.
	Subscribe(ctx context.Context, topics ...string) (notification.Subscription, error)
	Unsubscribe(ctx context.Context, topics ...string) error
}

const shardCount = 64

// UnsubscribeAfter is how long a topic without streams stays subscribed,
// so a reconnecting client does not cause an UNSUBSCRIBE/SUBSCRIBE pair.
// With the janitor's tick the pod lets go within 5 s as promised.
const UnsubscribeAfter = 2 * time.Second

const janitorTick = time.Second

// Hub is the pod's registry of topic → streams.
type Hub struct {
	bus    Bus
	log    *zap.Logger
	seed   maphash.Seed
	shards [shardCount]shard

	// subLock (a lock a joiner can stop waiting for) orders SUBSCRIBE
	// and UNSUBSCRIBE writes with the registry changes that cause them.
	// It is not held for a reply, but a write may wait for go-redis to
	// reconnect: a joiner gives up at its deadline rather than queue
	// behind others while Redis stalls.
	subLock    *semaphore.Weighted // of 1
	forgetMu   sync.Mutex
	forget     []string     // topics whose SUBSCRIBE failed, for the janitor to unsubscribe
	subscribed atomic.Int64 // topics held in Redis
	received   atomic.Int64 // messages read from Redis
	delivered  atomic.Int64 // events pushed to streams

	lag prometheus.Observer // seconds from publish to fan-out; nil: not measured
}

type shard struct {
	mu     sync.RWMutex
	topics map[string]*entry
	// idle holds the topics without members, so the janitor's tick looks
	// at them only and not at every topic of the pod.
	idle map[string]*entry
}

type entry struct {
	members   map[Member]struct{}
	ready     chan struct{} // closed once the subscription is confirmed or failed
	err       error         // set before ready is closed
	idleSince time.Time     // when the last member left; zero while it has members
}

// New returns a hub that subscribes through bus.
func New(bus Bus, log *zap.Logger) *Hub {
	h := &Hub{bus: bus, log: log, seed: maphash.MakeSeed(), subLock: semaphore.NewWeighted(1)}
	for i := range h.shards {
		h.shards[i].topics = map[string]*entry{}
		h.shards[i].idle = map[string]*entry{}
	}
	return h
}

func (h *Hub) shard(topic string) *shard {
	return &h.shards[maphash.String(h.seed, topic)%shardCount]
}

// Join registers m for topics and returns once every topic is subscribed
// in Redis, so the caller may tell its client that the stream is live. On
// error m is registered for none of them.
func (h *Hub) Join(ctx context.Context, m Member, topics []string) error {
	var created []string
	var createdEntries []*entry
	entries := make([]*entry, len(topics))
	for i, t := range topics {
		s := h.shard(t)
		s.mu.Lock()
		e := s.topics[t]
		if e == nil {
			e = &entry{members: map[Member]struct{}{}, ready: make(chan struct{})}
			s.topics[t] = e
			created = append(created, t)
			createdEntries = append(createdEntries, e)
		}
		e.members[m] = struct{}{}
		e.idleSince = time.Time{}
		delete(s.idle, t)
		s.mu.Unlock()
		entries[i] = e
	}
	if len(created) > 0 {
		// Others may join these topics meanwhile and wait for this
		// subscribe: a client that leaves must not fail it for them.
		subCtx := context.WithoutCancel(ctx)
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			subCtx, cancel = context.WithDeadline(subCtx, deadline)
			defer cancel()
		}
		h.subscribe(subCtx, created, createdEntries)
	}
	for i, e := range entries {
		select {
		case <-e.ready:
		case <-ctx.Done():
			h.Leave(m, topics)
			return fmt.Errorf("hub: join %s: %w", topics[i], ctx.Err())
		}
		if e.err != nil {
			h.Leave(m, topics)
			return fmt.Errorf("hub: join %s: %w", topics[i], e.err)
		}
	}
	return nil
}

// subscribe sends SUBSCRIBE for new entries and settles them when Redis
// answers. Failed entries are removed, so the next Join tries again.
func (h *Hub) subscribe(ctx context.Context, topics []string, entries []*entry) {
	if err := h.subLock.Acquire(ctx, 1); err != nil {
		h.settleFailed(topics, entries, err) // nothing was sent: nothing to forget
		return
	}
	// An entry whose members all left before we got here may already have
	// been removed by the janitor: subscribing it would leak.
	live := topics[:0:0]
	liveEntries := entries[:0:0]
	for i, t := range topics {
		s := h.shard(t)
		s.mu.RLock()
		if s.topics[t] == entries[i] {
			live = append(live, t)
			liveEntries = append(liveEntries, entries[i])
		}
		s.mu.RUnlock()
	}
	var pending notification.Subscription
	var err error
	if len(live) > 0 {
		pending, err = h.bus.Subscribe(ctx, live...)
	}
	h.subLock.Release(1)
	if err == nil && pending != nil {
		err = pending.Wait(ctx)
	}
	if err != nil {
		h.fail(live, liveEntries, err)
	} else {
		h.subscribed.Add(int64(len(live)))
	}
	for _, e := range entries {
		if e.err == nil && !isClosed(e.ready) {
			close(e.ready)
		}
	}
}

// fail settles entries whose subscription failed and removes them, so the
// next Join tries again. go-redis remembers channels whose SUBSCRIBE
// failed: the janitor unsubscribes them unless a topic is joined again.
func (h *Hub) fail(topics []string, entries []*entry, err error) {
	h.settleFailed(topics, entries, err)
	h.forgetMu.Lock()
	h.forget = append(h.forget, topics...)
	h.forgetMu.Unlock()
}

// settleFailed removes failed entries and wakes their joiners with err.
func (h *Hub) settleFailed(topics []string, entries []*entry, err error) {
	for i, t := range topics {
		s := h.shard(t)
		s.mu.Lock()
		if s.topics[t] == entries[i] {
			delete(s.topics, t)
			delete(s.idle, t)
		}
		entries[i].err = err
		close(entries[i].ready)
		s.mu.Unlock()
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Leave unregisters m from topics. The Redis subscription of a topic
// without members is dropped by the janitor after UnsubscribeAfter.
func (h *Hub) Leave(m Member, topics []string) {
	now := time.Now()
	for _, t := range topics {
		s := h.shard(t)
		s.mu.Lock()
		if e := s.topics[t]; e != nil {
			delete(e.members, m)
			if len(e.members) == 0 {
				e.idleSince = now
				s.idle[t] = e
			}
		}
		s.mu.Unlock()
	}
}

// Deliver fans a message out to the topic's members.
func (h *Hub) Deliver(msg notification.Message) {
	h.received.Add(1)
	s := h.shard(msg.Topic)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.topics[msg.Topic]
	if e == nil || len(e.members) == 0 {
		return
	}
	ev := NewEvent(msg)
	for m := range e.members {
		m.Push(ev)
	}
	h.delivered.Add(int64(len(e.members)))
	h.observeLag(msg.Envelope)
}

// ObserveLag makes the hub report, for every message it fans out, the
// seconds from its publish (the envelope's time, write-api's clock) to
// the end of its fan-out. Once per message, not per stream: every
// recipient was queued within the same call, and what a client's socket
// adds after that is what slow-stream closes count. Call before Run.
func (h *Hub) ObserveLag(o prometheus.Observer) { h.lag = o }

func (h *Hub) observeLag(env []byte) {
	if h.lag == nil {
		return
	}
	if at, ok := notification.EnvelopeTime(env); ok {
		h.lag.Observe(max(time.Since(at).Seconds(), 0)) // clocks of two hosts: never below zero
	}
}

// Resubscribed tells the topic's members to check history: messages
// published while the bus was disconnected were missed.
func (h *Hub) Resubscribed(topic string) {
	s := h.shard(topic)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.topics[topic]; e != nil {
		for m := range e.members {
			m.Resync(topic)
		}
	}
}

// Run drops idle subscriptions until ctx ends. Close the bus only after
// Run has returned: its last UNSUBSCRIBE may still be on the way.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(janitorTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if ctx.Err() != nil { // both were ready: stop rather than start more work
				return
			}
			h.unsubscribeIdle(ctx, now)
		}
	}
}

// unsubscribeIdle drops the topics idle for UnsubscribeAfter, and those
// whose SUBSCRIBE failed if nobody joined them since. Its UNSUBSCRIBE is
// not cut short when ctx ends: Run returns after it, and only then may the
// owner close the bus.
func (h *Hub) unsubscribeIdle(ctx context.Context, now time.Time) {
	_ = h.subLock.Acquire(context.Background(), 1) // cannot fail: it never gives up
	defer h.subLock.Release(1)
	var idle []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for t, e := range s.idle {
			if len(e.members) == 0 && isClosed(e.ready) && now.Sub(e.idleSince) >= UnsubscribeAfter {
				delete(s.topics, t)
				delete(s.idle, t)
				idle = append(idle, t)
			}
		}
		s.mu.Unlock()
	}
	h.subscribed.Add(-int64(len(idle)))
	idle = append(idle, h.failedUnjoined()...)
	if len(idle) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := h.bus.Unsubscribe(ctx, idle...); err != nil {
		// go-redis has forgotten the channels already; a reconnect will
		// not subscribe them again.
		h.log.Warn("unsubscribe failed", zap.Int("topics", len(idle)), zap.Error(err))
	}
}

// failedUnjoined takes the topics whose SUBSCRIBE failed and returns
// those that have no entry now. Call it holding subLock: a topic joined
// again after that is subscribed after the UNSUBSCRIBE.
func (h *Hub) failedUnjoined() []string {
	h.forgetMu.Lock()
	failed := h.forget
	h.forget = nil
	h.forgetMu.Unlock()
	slices.Sort(failed)
	var out []string
	for _, t := range slices.Compact(failed) {
		s := h.shard(t)
		s.mu.RLock()
		_, joined := s.topics[t]
		s.mu.RUnlock()
		if !joined {
			out = append(out, t)
		}
	}
	return out
}

// Subscribed is how many topics the pod holds in Redis.
func (h *Hub) Subscribed() int64 { return h.subscribed.Load() }

// Received is how many messages the pod has read from Redis.
func (h *Hub) Received() int64 { return h.received.Load() }

// Delivered is how many events the pod has queued to streams.
func (h *Hub) Delivered() int64 { return h.delivered.Load() }

// Topics is how many topics the registry holds (with or without members).
func (h *Hub) Topics() int {
	return h.count(func(s *shard) int { return len(s.topics) })
}

// Members is how many stream registrations the registry holds, over all
// topics.
func (h *Hub) Members() int {
	return h.count(func(s *shard) int {
		n := 0
		for _, e := range s.topics {
			n += len(e.members)
		}
		return n
	})
}

// count sums f over the shards, each read under its lock.
func (h *Hub) count(f func(*shard) int) int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += f(s)
		s.mu.RUnlock()
	}
	return n
}
