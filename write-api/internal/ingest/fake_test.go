package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"notify/pkg/notification"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
)

var errBusDown = errors.New("bus down")

// fakeBus keeps Bus's promise in memory: an event with Once is stored at
// most once per topic. Every event it actually publishes is kept.
type fakeBus struct {
	mu        sync.Mutex
	once      map[string]notification.Position // "<id> <topic>"
	seq       map[string]uint64
	published []notification.Event
	// storeOnly, when >= 0, stores at most that many new events of the
	// next call and then fails it, as an attempt cut off by a timeout.
	storeOnly int
	down      bool
}

func newFakeBus() *fakeBus {
	return &fakeBus{once: map[string]notification.Position{}, seq: map[string]uint64{}, storeOnly: -1}
}

func (b *fakeBus) Publish(_ context.Context, events []notification.Event) ([]notification.Stored, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, errBusDown
	}
	limit := b.storeOnly
	b.storeOnly = -1
	out := make([]notification.Stored, len(events))
	for i, ev := range events {
		if pos, ok := b.once[ev.Once+" "+ev.Topic]; ev.Once != "" && ok {
			out[i] = notification.Stored{Pos: pos, Existed: true}
			continue
		}
		if limit == 0 {
			return nil, errBusDown
		}
		limit--
		b.seq[ev.Topic]++
		pos := notification.Position{Epoch: 1, Seq: b.seq[ev.Topic], Link: ev.Link}
		if ev.Once != "" {
			b.once[ev.Once+" "+ev.Topic] = pos
		}
		b.published = append(b.published, ev)
		out[i] = notification.Stored{Pos: pos}
	}
	if limit >= 0 {
		return nil, errBusDown
	}
	return out, nil
}

func (b *fakeBus) events() []notification.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]notification.Event(nil), b.published...)
}

// clock is a settable time for leases.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestService is a Service over a fake bus and idempotency records in a
// real Redis (one per test binary would do; each test has its own prefix).
func newTestService(t *testing.T, r *redistest.Server) (*Service, *fakeBus, *clock) {
	t.Helper()
	bus := newFakeBus()
	clk := &clock{t: time.Now()}
	idem := NewIdempotency(r.Client(), redisbus.Keys{Prefix: fmt.Sprintf("%s:%d:", t.Name(), time.Now().UnixNano())})
	idem.now = clk.now
	return NewService(bus, idem), bus, clk
}
