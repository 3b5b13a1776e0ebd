package redisbus

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// shard is one pub/sub connection and the channels it should carry. In
// Redis Cluster all its channels share one slot, which SSUBSCRIBE needs.
type shard struct {
	s     *Subscriber
	part  int
	probe probe

	psMu sync.RWMutex // guards ps; replaced when found deaf or moved
	ps   *redis.PubSub

	mu       sync.Mutex
	channels map[string]struct{} // what the connection should carry

	lastErr atomic.Pointer[error] // last read error; nil while reads succeed
}

func newShard(s *Subscriber, part int) *shard {
	sh := &shard{s: s, part: part, channels: map[string]struct{}{}}
	sh.ps = sh.newPubSub()
	sh.probe = newProbe(s.keys.ProbeChannel(part, s.pod))
	return sh
}

// newPubSub opens a connection lazily; go-redis picks the node from the
// first channel's slot when it connects.
func (sh *shard) newPubSub(channels ...string) *redis.PubSub {
	if sh.s.sharded {
		return sh.s.client.SSubscribe(context.Background(), channels...)
	}
	return sh.s.client.Subscribe(context.Background(), channels...)
}

func (sh *shard) pubsub() *redis.PubSub {
	sh.psMu.RLock()
	defer sh.psMu.RUnlock()
	return sh.ps
}

func (sh *shard) subscribe(ctx context.Context, channels []string) error {
	sh.mu.Lock()
	for _, ch := range channels {
		sh.channels[ch] = struct{}{}
	}
	sh.mu.Unlock()
	if ps := sh.pubsub(); sh.s.sharded {
		return ps.SSubscribe(ctx, channels...)
	} else {
		return ps.Subscribe(ctx, channels...)
	}
}

func (sh *shard) unsubscribe(ctx context.Context, channels []string) error {
	sh.mu.Lock()
	for _, ch := range channels {
		delete(sh.channels, ch)
	}
	sh.mu.Unlock()
	if ps := sh.pubsub(); sh.s.sharded {
		return ps.SUnsubscribe(ctx, channels...)
	} else {
		return ps.Unsubscribe(ctx, channels...)
	}
}

func (sh *shard) wants(channel string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.channels[channel]
	return ok
}

// reconnect replaces the connection with a new one carrying the same
// channels (on whichever node now owns their slot). Redis confirms each
// again, which tells the handler to resync every topic from history.
func (sh *shard) reconnect() {
	sh.psMu.Lock()
	sh.mu.Lock()
	channels := slices.Collect(maps.Keys(sh.channels))
	sh.mu.Unlock()
	old := sh.ps
	sh.ps = sh.newPubSub(channels...)
	sh.psMu.Unlock()
	_ = old.Close()
}

// read hands messages to h until ctx ends. Read errors (Redis gone) are
// retried with jittered backoff; go-redis reconnects and resubscribes on
// the next read.
func (sh *shard) read(ctx context.Context, h Handler) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 2*time.Second
	for {
		ps := sh.pubsub()
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, redis.ErrClosed) {
				if sh.pubsub() == ps {
					return // closed for good
				}
				continue // replaced by reconnect
			}
			sh.lastErr.Store(&err)
			sh.s.stats.readErrors.Add(1)
			sh.s.log.Warn("redis pub/sub read failed; reconnecting", zap.Int("partition", sh.part), zap.Error(err))
			if moved(err) {
				// The connection is on a node that does not own the slot
				// (a stale slot map): go-redis keeps such a connection, so
				// refresh the map and open one on the owner.
				if cc, ok := sh.s.client.(*redis.ClusterClient); ok {
					cc.ReloadState(ctx)
				}
				sh.reconnect()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(bo.NextBackOff()):
			}
			continue
		}
		sh.lastErr.Store(nil)
		sh.probe.heard()
		bo.Reset()
		switch m := msg.(type) {
		case *redis.Message:
			if m.Channel == sh.probe.channel {
				sh.probe.answered()
				continue
			}
			sh.s.deliver(m, h)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				if !sh.s.confirm(m.Channel) {
					if t, ok := sh.s.keys.TopicOf(m.Channel); ok {
						sh.s.stats.resubscribed.Add(1)
						h.Resubscribed(t)
					}
				}
			case "sunsubscribe":
				// Unasked for: the slot moved to another node. Follow it.
				if sh.wants(m.Channel) {
					sh.s.log.Info("sharded channel moved; reconnecting", zap.Int("partition", sh.part))
					sh.reconnect()
				}
			}
		}
	}
}

// moved reports a cluster redirection: the slot is served elsewhere.
func moved(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
