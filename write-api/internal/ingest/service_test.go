package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"notify/pkg/notification"
	"notify/pkg/problem"
)

var limits = Limits{MaxDataBytes: 64, MaxBatch: 3}

func TestNormalize(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxTopics+1)
	for i := range many {
		many[i] = "seller:" + strings.Repeat("1", i+1)[:1] + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	for _, c := range []struct {
		name   string
		req    Request
		status int // 0: valid
		detail string
		topics []string
		data   string
	}{
		{"valid", Request{Topics: []string{"seller:1"}, Type: "t", Data: json.RawMessage(`{ "a" : 1 }`)}, 0, "", []string{"seller:1"}, `{"a":1}`},
		{"duplicate topics removed", Request{Topics: []string{"seller:1", "broadcast", "seller:1"}, Type: "t"}, 0, "", []string{"seller:1", "broadcast"}, "null"},
		{"no topics", Request{Type: "t"}, 400, "topics: want 1 to 100", nil, ""},
		{"too many topics", Request{Topics: many, Type: "t"}, 400, "got 101", nil, ""},
		{"invalid topic", Request{Topics: []string{"Seller:1"}, Type: "t"}, 400, "topics:", nil, ""},
		{"invalid type", Request{Topics: []string{"seller:1"}, Type: "a b"}, 400, "type:", nil, ""},
		{"reserved type", Request{Topics: []string{"seller:1"}, Type: "stream.reset"}, 400, "reserved", nil, ""},
		{"data not JSON", Request{Topics: []string{"seller:1"}, Type: "t", Data: json.RawMessage(`{`)}, 400, "data:", nil, ""},
		{"data too large", Request{Topics: []string{"seller:1"}, Type: "t", Data: json.RawMessage(`"` + strings.Repeat("x", 63) + `"`)}, 413, "the limit is 64", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			err := limits.Normalize(&req)
			if c.status == 0 {
				if err != nil || !slices.Equal(req.Topics, c.topics) || string(req.Data) != c.data {
					t.Fatalf("got %+v %v, want topics %v data %s", req, err, c.topics, c.data)
				}
				return
			}
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status() != c.status || !strings.Contains(pe.Detail, c.detail) {
				t.Fatalf("got %v, want %d saying %q", err, c.status, c.detail)
			}
		})
	}
}

func TestNormalizeBatch(t *testing.T) {
	t.Parallel()
	ok := Request{Topics: []string{"seller:1"}, Type: "t"}
	for _, c := range []struct {
		items  []Request
		detail string
		index  int
	}{
		{nil, "want 1 to 3 items, got 0", -1},
		{[]Request{ok, ok, ok, ok}, "got 4", -1},
		{[]Request{ok, {Topics: []string{"seller:1"}, Type: ""}, ok}, "notifications[1]: type", 1},
	} {
		err := limits.NormalizeBatch(c.items)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Status() != http.StatusBadRequest || !strings.Contains(pe.Detail, c.detail) ||
			(c.index < 0) != (pe.Index == nil) || (pe.Index != nil && *pe.Index != c.index) {
			t.Fatalf("%d items: got %v (index %v), want %q at %d", len(c.items), err, pe.Index, c.detail, c.index)
		}
	}
	if err := limits.NormalizeBatch([]Request{ok, ok}); err != nil {
		t.Fatal(err)
	}
}

func call(key, hash string, items ...Request) Call {
	return Call{Publisher: "svc", IdempotencyKey: key, BodyHash: hash, Items: items}
}

func item(data string, topics ...string) Request {
	return Request{Topics: topics, Type: "t", Data: json.RawMessage(data)}
}

// Every notification gets its own time-sortable id; each of its topics
// gets one event carrying it; only a keyed call marks events with Once.
func TestPublishIDsAndEvents(t *testing.T) {
	t.Parallel()
	s, bus, _, _ := newTestService(t)
	for _, key := range []string{"", "k1"} {
		acc, err := s.Publish(t.Context(), call(key, "h", item("1", "seller:1", "seller:2"), item("2", "seller:3")))
		if err != nil || acc.Replayed || len(acc.IDs) != 2 || acc.IDs[0] == acc.IDs[1] {
			t.Fatalf("key %q: %+v %v", key, acc, err)
		}
		for _, id := range acc.IDs {
			if _, ok := notification.IDTime(id); !ok {
				t.Fatalf("id %q is not a UUIDv7", id)
			}
		}
		evs := bus.events()[len(bus.events())-3:]
		for i, want := range []struct{ topic, id string }{{"seller:1", acc.IDs[0]}, {"seller:2", acc.IDs[0]}, {"seller:3", acc.IDs[1]}} {
			ev := evs[i]
			_, envelope, err := notification.DecodeBody(ev.Body)
			var env notification.Envelope
			if err != nil || json.Unmarshal(envelope, &env) != nil || env.ID != want.id || env.Topic != want.topic || ev.Topic != want.topic ||
				ev.Link != notification.LinkOf(want.id) || (ev.Once != "") != (key != "") || (key != "" && ev.Once != want.id) {
				t.Fatalf("key %q, event %d: %+v (envelope %s)", key, i, ev, envelope)
			}
		}
	}
}

func problemStatus(err error) int {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Status()
	}
	return 0
}

// The idempotency rules, one step after another on one key each.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	type step struct {
		hash      string
		storeOnly int  // -1: the bus stores everything
		down      bool // the bus fails before storing anything
		advance   time.Duration
		status    int  // 0: accepted
		replayed  bool // when accepted
		published int  // new events the step published
	}
	two := []Request{item("1", "seller:1", "seller:2"), item("2", "seller:3")}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"replay after success", []step{
			{hash: "h", storeOnly: -1, published: 3},
			{hash: "h", storeOnly: -1, replayed: true},
			{hash: "h", storeOnly: -1, advance: time.Hour, replayed: true},
		}},
		{"other body", []step{
			{hash: "h", storeOnly: -1, published: 3},
			{hash: "other", storeOnly: -1, status: 422},
		}},
		{"retry within the lease", []step{
			{hash: "h", storeOnly: 1, status: 503, published: 1},
			{hash: "h", storeOnly: -1, status: 409},
			{hash: "other", storeOnly: -1, status: 422},
		}},
		{"partial attempt, retry after the lease", []step{
			{hash: "h", storeOnly: 1, status: 503, published: 1},
			{hash: "h", storeOnly: -1, advance: leaseTime, published: 2},
			{hash: "h", storeOnly: -1, replayed: true},
		}},
		{"whole attempt unanswered, retry after the lease", []step{
			{hash: "h", storeOnly: 3, status: 503, published: 3}, // stored all, failed before the answer
			{hash: "h", storeOnly: -1, advance: leaseTime, replayed: true},
		}},
		{"nothing stored, retry after the lease", []step{
			{hash: "h", storeOnly: -1, down: true, status: 503},
			{hash: "h", storeOnly: -1, advance: leaseTime, published: 3},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, bus, _, clk := newTestService(t)
			var ids []string
			for i, st := range c.steps {
				clk.advance(st.advance)
				bus.mu.Lock()
				bus.storeOnly, bus.down = st.storeOnly, st.down
				bus.mu.Unlock()
				before := len(bus.events())
				acc, err := s.Publish(t.Context(), call("key", st.hash, two...))
				bus.mu.Lock()
				bus.down = false
				bus.mu.Unlock()
				if got := problemStatus(err); got != st.status || (err == nil) != (st.status == 0) {
					t.Fatalf("step %d: %v, want status %d", i, err, st.status)
				}
				if n := len(bus.events()) - before; n != st.published {
					t.Fatalf("step %d: published %d events, want %d", i, n, st.published)
				}
				if st.status == 409 || st.status == 503 {
					var pe *problem.Error
					if errors.As(err, &pe); pe.RetryAfter < time.Second {
						t.Fatalf("step %d: Retry-After %s", i, pe.RetryAfter)
					}
				}
				if err != nil {
					continue
				}
				if acc.Replayed != st.replayed {
					t.Fatalf("step %d: replayed %v, want %v", i, acc.Replayed, st.replayed)
				}
				if ids == nil {
					ids = acc.IDs
				} else if !slices.Equal(ids, acc.IDs) {
					t.Fatalf("step %d: ids %v, the first answer had %v", i, acc.IDs, ids)
				}
			}
			// Whatever the steps, each notification reached each topic once,
			// with one time.
			seen := map[string]string{}
			for _, ev := range bus.events() {
				k := ev.Once + " " + ev.Topic
				_, env, _ := notification.DecodeBody(ev.Body)
				var e notification.Envelope
				_ = json.Unmarshal(env, &e)
				if _, dup := seen[k]; dup {
					t.Fatalf("event %s published twice", k)
				}
				seen[k] = e.Time.String()
			}
		})
	}
}

// The 409 says how long the first attempt's lease still runs.
func TestConflictRetryAfterIsTheLease(t *testing.T) {
	t.Parallel()
	s, bus, _, clk := newTestService(t)
	bus.down = true
	if _, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1"))); problemStatus(err) != 503 {
		t.Fatalf("first attempt: %v", err)
	}
	clk.advance(time.Second)
	_, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Status() != 409 || pe.RetryAfter < leaseTime-time.Second-time.Millisecond || pe.RetryAfter > leaseTime {
		t.Fatalf("retry: %v, want 409 with Retry-After about %s", err, leaseTime-time.Second)
	}
}

// Concurrent requests with one key: exactly one publishes; the others
// replay its ids or are told 409. Also when they all retry a lapsed
// attempt at once, and when all of them read the record before any acts
// on it (gated).
func TestIdempotencyRace(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ lapsed, gated bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		lapsed := c.lapsed
		s, bus, recs, clk := newTestService(t)
		req := item("1", "seller:1", "seller:2")
		var first []string
		if lapsed {
			bus.storeOnly = 1
			if _, err := s.Publish(t.Context(), call("k", "h", req)); problemStatus(err) != 503 {
				t.Fatalf("cut-off attempt: %v", err)
			}
			clk.advance(leaseTime)
		}
		const n = 32
		if c.gated {
			recs.hold(n)
		}
		var (
			wg                         sync.WaitGroup
			mu                         sync.Mutex
			fresh, replayed, conflicts int
		)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				acc, err := s.Publish(t.Context(), call("k", "h", req))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case problemStatus(err) == 409:
					conflicts++
				case err != nil:
					t.Errorf("%+v: %v", c, err)
				default:
					if first == nil {
						first = acc.IDs
					} else if !slices.Equal(first, acc.IDs) {
						t.Errorf("%+v: ids %v and %v for one key", c, first, acc.IDs)
					}
					if acc.Replayed {
						replayed++
					} else {
						fresh++
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if fresh != 1 || len(bus.events()) != 2 {
			t.Fatalf("%+v: %d fresh answers, %d replays, %d conflicts, %d events published; want 1 fresh and 2 events",
				c, fresh, replayed, conflicts, len(bus.events()))
		}
		// Only the one that claimed or took over the key reached the bus.
		bus.mu.Lock()
		calls := bus.calls
		bus.mu.Unlock()
		if want := map[bool]int{false: 1, true: 2}[lapsed]; calls != want {
			t.Fatalf("%+v: %d calls reached the bus, want %d", c, calls, want)
		}
	}
}

// Without a key nothing is recorded: every call publishes.
func TestNoKeyPublishesEachTime(t *testing.T) {
	t.Parallel()
	s, bus, _, _ := newTestService(t)
	for range 2 {
		if acc, err := s.Publish(t.Context(), call("", "", item("1", "seller:1"))); err != nil || acc.Replayed {
			t.Fatalf("%+v %v", acc, err)
		}
	}
	if len(bus.events()) != 2 {
		t.Fatalf("%d events, want 2", len(bus.events()))
	}
}

// The records cannot be claimed (Redis down): 503 with Retry-After,
// nothing published.
func TestRecordsDownIs503(t *testing.T) {
	t.Parallel()
	s, bus, recs, _ := newTestService(t)
	recs.fail("claim")
	_, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Status() != 503 || pe.RetryAfter == 0 || !errors.Is(err, errRecordsDown) || len(bus.events()) != 0 {
		t.Fatalf("%v, %d events", err, len(bus.events()))
	}
}

// A takeover that cannot reach the records is 503 and publishes nothing;
// the lapsed attempt stays for the next retry to take over.
func TestTakeoverFailureIs503(t *testing.T) {
	t.Parallel()
	s, bus, recs, clk := newTestService(t)
	bus.storeOnly = 1
	if _, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1", "seller:2"))); problemStatus(err) != 503 {
		t.Fatalf("cut-off attempt: %v", err)
	}
	clk.advance(leaseTime)
	recs.fail("replace")
	if _, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1", "seller:2"))); problemStatus(err) != 503 || len(bus.events()) != 1 {
		t.Fatalf("takeover without records: %v, %d events", err, len(bus.events()))
	}
	recs.fail()
	if acc, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1", "seller:2"))); err != nil || acc.Replayed || len(bus.events()) != 2 {
		t.Fatalf("retry: %+v %v, %d events", acc, err, len(bus.events()))
	}
}

// Publishing succeeded but the record could not be marked done: the
// client is still answered; a retry after the lease takes the record
// over, finds every event stored and replays the same ids.
func TestUnfinishedRecordIsReplayedAfterTheLease(t *testing.T) {
	t.Parallel()
	s, bus, recs, clk := newTestService(t)
	recs.fail("update")
	first, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	if err != nil || first.Replayed {
		t.Fatalf("first: %+v %v", first, err)
	}
	recs.fail()
	if _, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1"))); problemStatus(err) != 409 {
		t.Fatalf("within the lease: %v, want 409", err)
	}
	clk.advance(leaseTime)
	acc, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	if err != nil || !acc.Replayed || !slices.Equal(acc.IDs, first.IDs) || len(bus.events()) != 1 {
		t.Fatalf("after the lease: %+v %v, %d events; want a replay of %v", acc, err, len(bus.events()), first.IDs)
	}
	if acc, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1"))); err != nil || !acc.Replayed {
		t.Fatalf("after the takeover finished: %+v %v", acc, err)
	}
}

// A claim resent after its reply was lost finds its own record: that is
// this request's claim, not another attempt's 409.
func TestOwnClaimSentTwice(t *testing.T) {
	t.Parallel()
	s, bus, recs, _ := newTestService(t)
	recs.resend = true
	acc, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	if err != nil || acc.Replayed || len(bus.events()) != 1 {
		t.Fatalf("%+v %v, %d events", acc, err, len(bus.events()))
	}
}

// A record outlives its use by IdempotencyTTL, then the key is free.
func TestKeyExpires(t *testing.T) {
	t.Parallel()
	s, bus, _, clk := newTestService(t)
	first, err := s.Publish(t.Context(), call("k", "h", item("1", "seller:1")))
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(IdempotencyTTL)
	acc, err := s.Publish(t.Context(), call("k", "other", item("2", "seller:1")))
	if err != nil || acc.Replayed || slices.Equal(acc.IDs, first.IDs) || len(bus.events()) != 2 {
		t.Fatalf("after the TTL: %+v %v, %d events", acc, err, len(bus.events()))
	}
}
