package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"notify/pkg/notification"
)

// Handler receives what the subscriber reads. Its methods run on a shard's
// read loop and must not block.
type Handler interface {
	// Deliver is called for every message, in channel order.
	Deliver(notification.Message)
	// Resubscribed is called after the connection to Redis was lost and the
	// topic was subscribed again: messages published meanwhile were missed
	// and must be read from history.
	Resubscribed(topic string)
}

// Subscriber holds the pod's pub/sub subscriptions, exactly the topics the
// hub asks for. Standalone and Sentinel use one connection; Redis Cluster
// uses sharded pub/sub with one connection per partition in use, each on
// the node that owns the partition's slot. go-redis reconnects and
// resubscribes on its own; the subscriber notices and tells the handler.
type Subscriber struct {
	client  redis.UniversalClient
	keys    Keys
	log     *zap.Logger
	sharded bool
	pod     string // names this pod's probe channels

	mu      sync.Mutex
	waiters map[string][]chan struct{} // channel → Subscribe calls awaiting confirmation
	shards  map[int]*shard             // partition (always 0 unless sharded) → connection
	run     *runState                  // set once Run has started

	stats subscriberStats
}

// subscriberStats count what went wrong with the pub/sub connections;
// read-api exports them.
type subscriberStats struct {
	readErrors    atomic.Int64 // reads that failed: the connection was lost
	resubscribed  atomic.Int64 // topics subscribed again after a reconnect (each is checked against history)
	probeTimeouts atomic.Int64 // probes not heard back: the connection was replaced
	probeErrors   atomic.Int64 // probes that could not be published
}

// ReadErrors counts failed reads on a pub/sub connection: the connection
// was lost.
func (s *Subscriber) ReadErrors() int64 { return s.stats.readErrors.Load() }

// Resubscribes counts topics subscribed again after a reconnect; each is
// checked against history.
func (s *Subscriber) Resubscribes() int64 { return s.stats.resubscribed.Load() }

// ProbeTimeouts counts self-probes not heard back: the connection was
// replaced.
func (s *Subscriber) ProbeTimeouts() int64 { return s.stats.probeTimeouts.Load() }

// ProbeErrors counts self-probes that could not be published.
func (s *Subscriber) ProbeErrors() int64 { return s.stats.probeErrors.Load() }

type runState struct {
	ctx context.Context
	h   Handler
	wg  sync.WaitGroup
}

// NewSubscriber creates an idle subscriber; call Run to read.
func NewSubscriber(client redis.UniversalClient, keys Keys, sharded bool, log *zap.Logger) *Subscriber {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return &Subscriber{
		client: client, keys: keys, log: log, sharded: sharded, pod: hex.EncodeToString(id),
		waiters: map[string][]chan struct{}{}, shards: map[int]*shard{},
	}
}

// ErrSubscribe is wrapped when Redis did not confirm a subscription.
var ErrSubscribe = errors.New("subscribe not confirmed")

// pending is a subscription sent to Redis and not yet confirmed.
type pending struct {
	s        *Subscriber
	channels []string
	waits    []chan struct{}
}

// Subscribe sends SUBSCRIBE for topics and returns at once; Wait on the
// result to know when Redis has confirmed.
func (s *Subscriber) Subscribe(ctx context.Context, topics ...string) (notification.Subscription, error) {
	channels := make([]string, len(topics))
	for i, t := range topics {
		channels[i] = s.keys.Channel(t)
	}
	p, err := s.subscribe(ctx, channels)
	if err != nil {
		return nil, err // a nil interface, not one holding a nil *pending
	}
	return p, nil
}

func (s *Subscriber) subscribe(ctx context.Context, channels []string) (*pending, error) {
	p := &pending{s: s, channels: channels, waits: make([]chan struct{}, len(channels))}
	s.mu.Lock()
	for i, ch := range channels {
		p.waits[i] = make(chan struct{})
		s.waiters[ch] = append(s.waiters[ch], p.waits[i])
	}
	s.mu.Unlock()
	for sh, chs := range s.group(channels) {
		if err := sh.subscribe(ctx, chs); err != nil {
			s.dropWaiters(p.channels, p.waits)
			return nil, fmt.Errorf("redisbus: subscribe %d channels: %w", len(channels), err)
		}
	}
	return p, nil
}

// Wait returns once Redis has confirmed every topic: from then on every
// publish to them is delivered.
func (p *pending) Wait(ctx context.Context) error {
	for _, w := range p.waits {
		select {
		case <-w:
		case <-ctx.Done():
			p.s.dropWaiters(p.channels, p.waits)
			return fmt.Errorf("redisbus: %w: %w", ErrSubscribe, ctx.Err())
		}
	}
	return nil
}

// Unsubscribe stops receiving topics. go-redis forgets them even when the
// write fails, so a later reconnect does not subscribe them again.
func (s *Subscriber) Unsubscribe(ctx context.Context, topics ...string) error {
	channels := make([]string, len(topics))
	for i, t := range topics {
		channels[i] = s.keys.Channel(t)
	}
	var errs []error
	for sh, chs := range s.group(channels) {
		errs = append(errs, sh.unsubscribe(ctx, chs))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redisbus: unsubscribe %d topics: %w", len(topics), err)
	}
	return nil
}

// group sorts channels by the connection that carries them, creating
// connections (and starting their read loops) as needed.
func (s *Subscriber) group(channels []string) map[*shard][]string {
	out := map[*shard][]string{}
	for _, ch := range channels {
		part := 0
		if s.sharded {
			part, _ = s.keys.PartitionOf(ch)
		}
		sh := s.shard(part)
		out[sh] = append(out[sh], ch)
	}
	return out
}

func (s *Subscriber) shard(part int) *shard {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shards[part]
	if sh == nil {
		sh = newShard(s, part)
		s.shards[part] = sh
		if s.run != nil {
			s.start(sh)
		}
	}
	return sh
}

// start runs a shard's read loop and probe; s.mu is held.
func (s *Subscriber) start(sh *shard) {
	r := s.run
	r.wg.Go(func() { sh.read(r.ctx, r.h) })
	r.wg.Go(func() { sh.probe.run(r.ctx, sh) })
}

// Run reads until ctx ends, handing what it reads to h.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	s.mu.Lock()
	s.run = &runState{ctx: ctx, h: h}
	if !s.sharded && s.shards[0] == nil {
		s.shards[0] = newShard(s, 0) // the probe runs even before any stream
	}
	for _, sh := range s.shards {
		s.start(sh)
	}
	r := s.run
	s.mu.Unlock()
	<-ctx.Done()
	s.Close()
	r.wg.Wait()
	return nil
}

// Healthy reports a read error of any connection, or nil while all work.
func (s *Subscriber) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shards {
		if err := sh.lastErr.Load(); err != nil {
			return fmt.Errorf("redisbus: pub/sub connection: %w", *err)
		}
	}
	return nil
}

// Close releases every pub/sub connection.
func (s *Subscriber) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shards {
		_ = sh.pubsub().Close()
	}
}

func (s *Subscriber) deliver(m *redis.Message, h Handler) {
	topic, ok := s.keys.TopicOf(m.Channel)
	if !ok {
		return
	}
	msg, err := notification.DecodePublished(topic, m.Payload)
	if err != nil {
		s.log.Error("dropping malformed message", zap.String("topic", topic), zap.Error(err))
		return
	}
	h.Deliver(msg)
}

// confirm wakes the Subscribe calls waiting for channel; false means nobody
// waited, i.e. go-redis subscribed it again after a reconnect.
func (s *Subscriber) confirm(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.waiters[channel]
	if !ok {
		return false
	}
	delete(s.waiters, channel)
	for _, w := range ws {
		close(w)
	}
	return true
}

func (s *Subscriber) dropWaiters(channels []string, waits []chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ch := range channels {
		ws := s.waiters[ch]
		for j, w := range ws {
			if w == waits[i] {
				ws = append(ws[:j], ws[j+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(s.waiters, ch)
		} else {
			s.waiters[ch] = ws
		}
	}
}
