package ingest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"notify/pkg/notification"
)

var (
	errBusDown     = errors.New("bus down")
	errRecordsDown = errors.New("records down")
)

// fakeBus keeps Bus's promise in memory: an event with Once is stored at
// most once per topic. Every event it actually publishes is kept.
type fakeBus struct {
	mu        sync.Mutex
	once      map[string]notification.Position // "<id> <topic>"
	seq       map[string]uint64
	published []notification.Event
	calls     int // Publish calls that reached the bus
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
	b.calls++
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

// fakeRecords keeps IdempotencyRecords' promise in memory, each step
// atomic, records expiring by the test's clock.
type fakeRecords struct {
	mu      sync.Mutex
	now     func() time.Time
	records map[string]fakeRecord // "<publisher>\x00<key>"
	// down fails every step whose name it lists ("claim", "replace",
	// "update") before it changes anything.
	down map[string]bool
	// resend makes the next claim that stores its record answer that
	// record as held, as a command resent after its reply was lost does.
	resend bool
	// gate, when set, holds each claim's answer until gateN claims have
	// been made (at most 10 s), so concurrent requests all read the
	// record before any of them acts on it.
	gate    chan struct{}
	gateN   int
	arrived int
}

// hold makes the next n claims wait for each other.
func (f *fakeRecords) hold(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.gateN, f.arrived = make(chan struct{}), n, 0
}

func (f *fakeRecords) wait() {
	f.mu.Lock()
	gate := f.gate
	if gate != nil {
		if f.arrived++; f.arrived == f.gateN {
			close(gate)
			f.gate = nil
		}
	}
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
	}
}

type fakeRecord struct {
	value   []byte
	expires time.Time
}

func (f *fakeRecords) get(name string) ([]byte, bool) {
	r, ok := f.records[name]
	if !ok || !f.now().Before(r.expires) {
		delete(f.records, name)
		return nil, false
	}
	return r.value, true
}

func (f *fakeRecords) Claim(_ context.Context, publisher, key string, record []byte, ttl time.Duration) ([]byte, bool, error) {
	defer f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down["claim"] {
		return nil, false, errRecordsDown
	}
	name := publisher + "\x00" + key
	if held, ok := f.get(name); ok {
		return held, false, nil
	}
	f.records[name] = fakeRecord{value: bytes.Clone(record), expires: f.now().Add(ttl)}
	if f.resend {
		f.resend = false
		return bytes.Clone(record), false, nil
	}
	return nil, true, nil
}

func (f *fakeRecords) Replace(_ context.Context, publisher, key string, old, record []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down["replace"] {
		return false, errRecordsDown
	}
	name := publisher + "\x00" + key
	if held, ok := f.get(name); !ok || !bytes.Equal(held, old) {
		return false, nil
	}
	f.records[name] = fakeRecord{value: bytes.Clone(record), expires: f.records[name].expires}
	return true, nil
}

func (f *fakeRecords) Update(_ context.Context, publisher, key string, record []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down["update"] {
		return errRecordsDown
	}
	name := publisher + "\x00" + key
	if _, ok := f.get(name); ok {
		f.records[name] = fakeRecord{value: bytes.Clone(record), expires: f.records[name].expires}
	}
	return nil
}

// fail makes the named steps fail from now on; none: every step works.
func (f *fakeRecords) fail(steps ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = map[string]bool{}
	for _, s := range steps {
		f.down[s] = true
	}
}

// newTestService is a Service over a fake bus and fake idempotency
// records, both on the returned clock.
func newTestService(t *testing.T) (*Service, *fakeBus, *fakeRecords, *clock) {
	t.Helper()
	bus := newFakeBus()
	clk := &clock{t: time.Now()}
	recs := &fakeRecords{now: clk.now, records: map[string]fakeRecord{}}
	idem := NewIdempotency(recs)
	idem.now = clk.now
	return NewService(bus, idem), bus, recs, clk
}
