package redisbus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"notify/pkg/notification"
)

// Handler receives what the subscriber reads. Its methods run on the
// subscriber's read loop and must not block.
type Handler interface {
	// Deliver is called for every message, in channel order.
	Deliver(notification.Message)
	// Resubscribed is called after the connection to Redis was lost and the
	// topic was subscribed again: messages published meanwhile were missed
	// and must be read from history.
	Resubscribed(topic string)
}

// Subscriber holds one pub/sub connection subscribed to exactly the
// topics the hub asks for. go-redis reconnects and resubscribes on its
// own; the subscriber notices that and tells the handler.
type Subscriber struct {
	client  redis.UniversalClient
	keys    Keys
	log     *zap.Logger
	sharded bool
	probe   probe

	psMu sync.RWMutex // guards ps; replaced when a probe finds it deaf
	ps   *redis.PubSub

	mu       sync.Mutex
	waiters  map[string][]chan struct{} // channel → Subscribe calls awaiting confirmation
	channels map[string]struct{}        // what the connection should be subscribed to

	lastErr atomic.Pointer[error] // last read error; nil while reads succeed
}

// NewSubscriber creates an idle subscriber; call Run to read.
func NewSubscriber(client redis.UniversalClient, keys Keys, sharded bool, log *zap.Logger) *Subscriber {
	s := &Subscriber{client: client, keys: keys, log: log, sharded: sharded, waiters: map[string][]chan struct{}{}, channels: map[string]struct{}{}}
	s.ps = s.newPubSub()
	s.probe = newProbe(keys)
	return s
}

func (s *Subscriber) newPubSub(channels ...string) *redis.PubSub {
	if s.sharded {
		return s.client.SSubscribe(context.Background(), channels...)
	}
	return s.client.Subscribe(context.Background(), channels...)
}

func (s *Subscriber) pubsub() *redis.PubSub {
	s.psMu.RLock()
	defer s.psMu.RUnlock()
	return s.ps
}

// ErrSubscribe is wrapped when Redis did not confirm a subscription.
var ErrSubscribe = errors.New("subscribe not confirmed")

// Pending is a subscription sent to Redis and not yet confirmed.
type Pending struct {
	s        *Subscriber
	channels []string
	waits    []chan struct{}
}

// Subscribe sends SUBSCRIBE for topics and returns at once; Wait on the
// result to know when Redis has confirmed. Sending and waiting are apart so
// callers can order their SUBSCRIBE and UNSUBSCRIBE writes under their own
// lock without holding it for a round trip.
func (s *Subscriber) Subscribe(ctx context.Context, topics ...string) (*Pending, error) {
	channels := make([]string, len(topics))
	for i, t := range topics {
		channels[i] = s.keys.Channel(t)
	}
	return s.subscribe(ctx, channels)
}

func (s *Subscriber) subscribe(ctx context.Context, channels []string) (*Pending, error) {
	p := &Pending{s: s, channels: channels, waits: make([]chan struct{}, len(channels))}
	s.mu.Lock()
	for i, ch := range channels {
		p.waits[i] = make(chan struct{})
		s.waiters[ch] = append(s.waiters[ch], p.waits[i])
		s.channels[ch] = struct{}{}
	}
	s.mu.Unlock()

	var err error
	if ps := s.pubsub(); s.sharded {
		err = ps.SSubscribe(ctx, p.channels...)
	} else {
		err = ps.Subscribe(ctx, p.channels...)
	}
	if err != nil {
		s.dropWaiters(p.channels, p.waits)
		return nil, fmt.Errorf("redisbus: subscribe %d channels: %w", len(channels), err)
	}
	return p, nil
}

// Wait returns once Redis has confirmed every topic: from then on every
// publish to them is delivered.
func (p *Pending) Wait(ctx context.Context) error {
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
	if len(topics) == 0 {
		return nil
	}
	channels := make([]string, len(topics))
	s.mu.Lock()
	for i, t := range topics {
		channels[i] = s.keys.Channel(t)
		delete(s.channels, channels[i])
	}
	s.mu.Unlock()
	var err error
	if ps := s.pubsub(); s.sharded {
		err = ps.SUnsubscribe(ctx, channels...)
	} else {
		err = ps.Unsubscribe(ctx, channels...)
	}
	if err != nil {
		return fmt.Errorf("redisbus: unsubscribe %d topics: %w", len(topics), err)
	}
	return nil
}

// Run reads until ctx ends and hands what it reads to h. Read errors
// (Redis gone) are retried with jittered backoff; go-redis reconnects and
// resubscribes on the next read. A probe loop checks that an idle
// connection still receives, and replaces it if not.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	if !s.sharded {
		go s.probe.run(ctx, s)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 2*time.Second
	for {
		msg, err := s.pubsub().Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.lastErr.Store(&err)
			s.log.Warn("redis pub/sub read failed; reconnecting", zap.Error(err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(bo.NextBackOff()):
			}
			continue
		}
		s.lastErr.Store(nil)
		s.probe.heard()
		bo.Reset()
		switch m := msg.(type) {
		case *redis.Message:
			if m.Channel == s.probe.channel {
				s.probe.answered()
				continue
			}
			s.deliver(m, h)
		case *redis.Subscription:
			if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
				continue
			}
			if !s.confirm(m.Channel) {
				if t, ok := s.keys.TopicOf(m.Channel); ok {
					h.Resubscribed(t)
				}
			}
		}
	}
}

// Healthy reports the last read error, or nil while the connection works.
func (s *Subscriber) Healthy() error {
	if err := s.lastErr.Load(); err != nil {
		return fmt.Errorf("redisbus: pub/sub connection: %w", *err)
	}
	return nil
}

// reconnect replaces the pub/sub connection with a new one subscribed to
// the same channels. Redis confirms each again, which tells the handler
// to resync every topic from history.
func (s *Subscriber) reconnect() {
	s.psMu.Lock()
	s.mu.Lock()
	channels := slices.Collect(maps.Keys(s.channels))
	s.mu.Unlock()
	old := s.ps
	s.ps = s.newPubSub(channels...)
	s.psMu.Unlock()
	_ = old.Close()
}

// Close releases the pub/sub connection.
func (s *Subscriber) Close() error { return s.pubsub().Close() }

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
