package redisbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"notify/pkg/notification"
	"notify/pkg/redistest"
)

func newStateBus(t *testing.T, r *redistest.Server, maxKeys int64) (*Publisher, *State) {
	t.Helper()
	keys := Keys{Prefix: fmt.Sprintf("t%d:", time.Now().UnixNano())}
	return NewPublisher(r.Client(), keys, PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour, StateMaxKeys: maxKeys}), NewState(r.Client(), keys)
}

// keyed is an event setting key (or removing it) with a body naming n.
func keyed(topic, key string, n int, remove bool) notification.Event {
	return notification.Event{Topic: topic, Key: key, Remove: remove, Body: body(n)}
}

// readState returns the state's entries as "seq:body" and its position.
func readState(t *testing.T, st *State, topic string) ([]string, notification.Position) {
	t.Helper()
	var got []string
	pos, err := st.Read(t.Context(), topic, func(ms []notification.Message) error {
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%d:%s", m.Pos.Seq, m.Envelope))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, pos
}

// The state holds each key's latest event in last-update order; data null
// removes a key; unkeyed events leave it alone; the position is the
// topic's.
func TestStateFollowsKeyedPublishes(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, st := newStateBus(t, r, 100)
	ctx := t.Context()
	if got, pos := readState(t, st, "device:1"); len(got) != 0 || !pos.Zero() {
		t.Fatalf("never published: %v at %+v", got, pos)
	}
	items := []notification.Event{
		keyed("device:1", "a", 1, false), keyed("device:1", "b", 2, false), keyed("device:1", "c", 3, false),
		{Topic: "device:1", Body: body(4)}, keyed("device:1", "a", 5, false), keyed("device:1", "b", 6, true),
	}
	pos, err := pub.Publish(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	got, at := readState(t, st, "device:1")
	want := []string{`3:{"id":"id-3","data":3}`, `5:{"id":"id-5","data":5}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state %v, want %v", got, want)
	}
	if at.Epoch != pos[5].Pos.Epoch || at.Seq != 6 || at.Link != 1 {
		t.Fatalf("state position %+v, want the topic's, %+v", at, pos[5].Pos)
	}
}

// Past STATE_MAX_KEYS a new key drops the least recently updated one; an
// update of an existing key drops nothing.
func TestStateEvictsLeastRecentlyUpdated(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, st := newStateBus(t, r, 3)
	ctx := t.Context()
	for i, k := range []string{"a", "b", "c", "a", "d", "b"} {
		if _, err := pub.Publish(ctx, []notification.Event{keyed("device:1", k, i+1, false)}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := readState(t, st, "device:1")
	// After a's update the order is b c a; d evicts b; b comes back and
	// evicts c.
	if len(got) != 3 || !strings.HasPrefix(got[0], "4:") || !strings.HasPrefix(got[1], "5:") || !strings.HasPrefix(got[2], "6:") {
		t.Fatalf("state %v, want a(4) d(5) b(6)", got)
	}
	if n, _ := r.Client().HLen(ctx, pub.keys.State("device:1")).Result(); n != 3 {
		t.Fatalf("state hash holds %d keys, want 3", n)
	}
}

// A new epoch (expiry, data loss) starts with an empty state, and the
// state's keys expire, never before the history.
func TestStateNewEpochAndTTL(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, st := newStateBus(t, r, 10)
	ctx := t.Context()
	if _, err := pub.Publish(ctx, []notification.Event{keyed("device:1", "a", 1, false), keyed("device:1", "b", 2, false)}); err != nil {
		t.Fatal(err)
	}
	c := r.Client()
	stateTTL := func(what string, lo, hi time.Duration) {
		t.Helper()
		for _, k := range []string{pub.keys.State("device:1"), pub.keys.StateOrder("device:1")} {
			if ttl, _ := c.PTTL(ctx, k).Result(); ttl < lo || ttl > hi {
				t.Fatalf("%s: %s ttl %s, want %s to %s", what, k, ttl, lo, hi)
			}
		}
	}
	// The state's keys outlive the history (an hour here): they are set
	// to live two, and renewed once less than one is left.
	stateTTL("first keyed event", time.Hour, 2*time.Hour)
	c.HSet(ctx, pub.keys.Meta("device:1"), "sx", time.Now().Add(time.Minute).UnixMilli())
	c.PExpire(ctx, pub.keys.State("device:1"), time.Minute)
	c.PExpire(ctx, pub.keys.StateOrder("device:1"), time.Minute)
	if _, err := pub.Publish(ctx, []notification.Event{{Topic: "device:1", Body: body(9)}}); err != nil { // unkeyed
		t.Fatal(err)
	}
	stateTTL("renewed by an unkeyed event", time.Hour, 2*time.Hour)
	// Emptied, then a new key: the recreated keys get the expiry too.
	if _, err := pub.Publish(ctx, []notification.Event{keyed("device:1", "a", 1, true), keyed("device:1", "b", 2, true), keyed("device:1", "z", 3, false)}); err != nil {
		t.Fatal(err)
	}
	stateTTL("recreated", time.Hour, 2*time.Hour)
	c.Del(ctx, pub.keys.Meta("device:1")) // the counter is gone: as if expired
	if got, pos := readState(t, st, "device:1"); len(got) != 0 || !pos.Zero() {
		t.Fatalf("state without its counter: %v at %+v", got, pos)
	}
	if _, err := pub.Publish(ctx, []notification.Event{keyed("device:1", "c", 3, false)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readState(t, st, "device:1"); fmt.Sprint(got) != `[1:{"id":"id-3","data":3}]` {
		t.Fatalf("state in a new epoch %v, want only c", got)
	}
}

// A state larger than a page is read whole, in update order, at the
// position of its first page; updates during the read are past that
// position and not in the pages.
func TestStateReadInPages(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, st := newStateBus(t, r, 5000)
	ctx := t.Context()
	const n = 3*statePageKeys + 7
	items := make([]notification.Event, 0, n)
	for i := 1; i <= n; i++ {
		items = append(items, keyed("device:1", fmt.Sprintf("k%d", i), i, false))
	}
	if _, err := pub.Publish(ctx, items); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	pages := 0
	pos, err := st.Read(ctx, "device:1", func(ms []notification.Message) error {
		pages++
		if pages == 2 { // updates while the state is read: k1 (read) and k1400 (not yet)
			if _, err := pub.Publish(context.Background(), []notification.Event{keyed("device:1", "k1", 9001, false), keyed("device:1", "k1400", 9002, false)}); err != nil {
				return err
			}
		}
		for _, m := range ms {
			seqs = append(seqs, m.Pos.Seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != n || pages < 4 {
		t.Fatalf("position %+v after %d pages, want seq %d over 4 pages", pos, pages, n)
	}
	if len(seqs) != n-1 {
		t.Fatalf("%d entries, want %d (k1400 moved past the position)", len(seqs), n-1)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] || seqs[i] > pos.Seq {
			t.Fatalf("entries out of order or past the position: %d after %d", seqs[i], seqs[i-1])
		}
	}
}
