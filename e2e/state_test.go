package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/devtoken"
)

// A snapshot on a fresh stream: one event per key in last-update order,
// each exactly as delivered live but without an id; removed keys and
// unkeyed events are not in it; then stream.synced, with the stream's
// cursor and every topic, then live events.
func TestSnapshotFreshStream(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:1")
	live := openFrames(t, r, tok, "?topic=device:1", nil) // records what live delivery sends

	publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "door", map[string]any{"open": true})
	publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "lamp", map[string]any{"on": false})
	publishKeyed(t, w, pub, []string{"device:1"}, "device.battery", "battery", 80)
	publishKeyed(t, w, pub, []string{"device:1"}, "device.note", nil, "unkeyed")
	publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "door", map[string]any{"open": false})
	publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "lamp", nil) // removes lamp
	publishKeyed(t, w, pub, []string{"broadcast"}, "maintenance", "window", "tonight")
	wire := map[string]frame{} // notification id → live frame
	for range 7 {
		fr := live.next(t, 5*time.Second)
		wire[decodeEnv(t, fr.Data).ID] = fr
	}

	f := openFrames(t, r, tok, "?topic=device:1&snapshot=true", nil)
	snap, synced := f.untilSynced(t, 5*time.Second)
	var got []string
	for _, fr := range snap {
		if fr.HasID {
			t.Fatalf("snapshot event with an id: %+v", fr)
		}
		e := decodeEnv(t, fr.Data)
		lv := wire[e.ID]
		if fr.Type != lv.Type || fr.Data != lv.Data {
			t.Fatalf("snapshot event %s %s differs from live %s %s", fr.Type, fr.Data, lv.Type, lv.Data)
		}
		got = append(got, e.Topic+"/"+*e.Key+"="+string(e.Data))
	}
	slices.Sort(got) // order across topics is free; within device:1 it is checked below
	want := []string{`broadcast/window="tonight"`, `device:1/battery=80`, `device:1/door={"open":false}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	var order []string
	for _, fr := range snap {
		if e := decodeEnv(t, fr.Data); e.Topic == "device:1" {
			order = append(order, *e.Key)
		}
	}
	if fmt.Sprint(order) != "[battery door]" {
		t.Fatalf("device:1 snapshot order %v, want battery, door (last-update order)", order)
	}
	if !synced.HasID || synced.ID == "" || synced.Data != `{"topics":["device:1","broadcast"]}` {
		t.Fatalf("stream.synced %+v", synced)
	}
	id := publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "door", map[string]any{"open": true})
	if fr := f.next(t, 5*time.Second); !fr.HasID || decodeEnv(t, fr.Data).ID != id || *decodeEnv(t, fr.Data).Key != "door" {
		t.Fatalf("live event after synced: %+v", fr)
	}

	// Without snapshot=true nothing changes: no snapshot, no stream.synced.
	plain := openFrames(t, r, tok, "?topic=device:1", nil)
	id = publishKeyed(t, w, pub, []string{"device:1"}, "device.status", "door", 1)
	if fr := plain.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != id {
		t.Fatalf("plain stream's first event %+v, want the new notification", fr)
	}
}

// Resume with snapshot=true: the topic the cursor covers resumes exactly
// (replayed, no snapshot), the topic it does not cover gets a snapshot
// without stream.reset; a cursor whose history is gone gets stream.reset
// (without id) and then the snapshot.
func TestSnapshotResume(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:1", "device:2")
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "a", 1)
	publishKeyed(t, w, pub, []string{"device:2"}, "s", "b", 2)
	// A cursor covering device:1 only: its state read's.
	st := readStateDoc(t, r, tok, "device:1")
	missed := publishKeyed(t, w, pub, []string{"device:1"}, "s", "a", 3)

	f := openFrames(t, r, tok, "?topic=device:1&topic=device:2&snapshot=true&lastEventId="+st.Cursor, nil)
	before, synced := f.untilSynced(t, 5*time.Second)
	if len(before) != 2 {
		t.Fatalf("before stream.synced: %+v, want device:2's snapshot then device:1's missed event", before)
	}
	if e := decodeEnv(t, before[0].Data); before[0].HasID || e.Topic != "device:2" || *e.Key != "b" {
		t.Fatalf("first event %+v, want device:2's snapshot entry without id", before[0])
	}
	if e := decodeEnv(t, before[1].Data); !before[1].HasID || e.ID != missed {
		t.Fatalf("second event %+v, want the replayed %s with an id", before[1], missed)
	}
	if !synced.HasID {
		t.Fatal("stream.synced without id")
	}

	// History gone: the topic's data is lost (its counter starts anew).
	if err := s.Redis.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "c", 4)
	g := openFrames(t, r, tok, "?topic=device:1&topic=device:2&snapshot=true&lastEventId="+synced.ID, nil)
	before, _ = g.untilSynced(t, 5*time.Second)
	if len(before) != 2 || before[0].Type != "stream.reset" || before[0].HasID {
		t.Fatalf("after data loss: %+v, want stream.reset without id, then the new snapshot", before)
	}
	if !strings.Contains(before[0].Data, `"device:1"`) || !strings.Contains(before[0].Data, `"device:2"`) {
		t.Fatalf("reset %s, want both topics", before[0].Data)
	}
	if e := decodeEnv(t, before[1].Data); before[1].HasID || *e.Key != "c" {
		t.Fatalf("snapshot after reset %+v, want only c", before[1])
	}
}

// GET /v1/state, then a stream from its cursor: exactly what was published
// to the topic after the read; the stream's other topics start live.
func TestStateThenStream(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:1", "device:2")
	if d := readStateDoc(t, r, tok, "device:1"); len(d.Entries) != 0 || d.Cursor == "" || d.Topic != "device:1" {
		t.Fatalf("state of a topic never published: %+v", d)
	}
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "a", 1)
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "b", 2)
	publishKeyed(t, w, pub, []string{"device:2"}, "s", "x", 0) // before the stream: not delivered
	d := readStateDoc(t, r, tok, "device:1")
	if len(d.Entries) != 2 || *d.Entries[0].Key != "a" || *d.Entries[1].Key != "b" {
		t.Fatalf("state %+v", d.Entries)
	}
	after := publishKeyed(t, w, pub, []string{"device:1"}, "s", "a", 3)
	f := openFrames(t, r, tok, "?topic=device:1&topic=device:2&lastEventId="+d.Cursor, nil)
	if fr := f.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != after || !fr.HasID {
		t.Fatalf("first event %+v, want %s", fr, after)
	}
	two := publishKeyed(t, w, pub, []string{"device:2"}, "s", "y", 1)
	if fr := f.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != two {
		t.Fatalf("device:2 event %+v, want %s (started live)", fr, two)
	}
}

// History newest first, paged with next to the end; head and each event's
// cursor resume a stream right after them.
func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("shop")
	tok := s.SubscriberToken("seller", "seller:42")
	if d := readHistoryDoc(t, r, tok, url.Values{"topic": {"seller:42"}}); len(d.Events) != 0 || d.Next != nil || d.Head == "" {
		t.Fatalf("history of a topic never published: %+v", d)
	}
	var ids []string
	for i := range 45 {
		ids = append(ids, publish(t, w, pub, []string{"seller:42"}, "order.paid", i))
	}
	var got []string
	q := url.Values{"topic": {"seller:42"}, "limit": {"20"}}
	var head string
	var cursors []string
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		d := readHistoryDoc(t, r, tok, q)
		if page == 0 {
			head = d.Head
		}
		for _, e := range d.Events {
			got = append(got, e.ID)
			cursors = append(cursors, e.Cursor)
		}
		if d.Next == nil {
			break
		}
		q.Set("before", *d.Next)
	}
	slices.Reverse(got)
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("history paged: %d events %v, want the 45 published, newest first", len(got), got)
	}
	// Default limit.
	if d := readHistoryDoc(t, r, tok, url.Values{"topic": {"seller:42"}}); len(d.Events) != 20 || d.Events[0].ID != ids[44] {
		t.Fatalf("default page: %d events", len(d.Events))
	}
	newer := publish(t, w, pub, []string{"seller:42"}, "order.paid", 99)
	f := openFrames(t, r, tok, "?topic=seller:42", map[string][]string{"Last-Event-ID": {head}})
	if fr := f.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != newer {
		t.Fatalf("from head: %+v, want %s", fr, newer)
	}
	// cursors[5] is ids[39] (newest first): the stream replays 40..44 and newer.
	g := openFrames(t, r, tok, "?topic=seller:42&lastEventId="+url.QueryEscape(cursors[5]), nil)
	for _, want := range append(slices.Clone(ids[40:]), newer) {
		if fr := g.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != want {
			t.Fatalf("from an event's cursor: %+v, want %s", fr, want)
		}
	}
}

// The reads' refusals: 400, 401, 403, 410, and 503 with Retry-After
// within 3 s when Redis is gone.
func TestReadRefusals(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("shop")
	tok := s.SubscriberToken("seller", "seller:42", "seller:43")
	reader, _ := devtoken.Publisher(stack.Secret, "notifications", "admin", "notifications:read", time.Hour)
	expired, _ := devtoken.Subscriber(stack.Secret, "notifications", "u", []string{"seller:42"}, -time.Minute)
	publish(t, w, pub, []string{"seller:42"}, "order.paid", 1)
	d := readHistoryDoc(t, r, tok, url.Values{"topic": {"seller:42"}})
	other := readHistoryDoc(t, r, tok, url.Values{"topic": {"seller:43"}}).Head
	type tc struct {
		name, path, tok string
		q               url.Values
		want            int
	}
	cases := []tc{
		{"no token", "/v1/history", "", url.Values{"topic": {"seller:42"}}, 401},
		{"expired token", "/v1/state", expired, url.Values{"topic": {"seller:42"}}, 401},
		{"topic not granted", "/v1/state", tok, url.Values{"topic": {"seller:7"}}, 403},
		{"topic not granted (history)", "/v1/history", tok, url.Values{"topic": {"seller:7"}}, 403},
		{"missing topic", "/v1/state", tok, url.Values{}, 400},
		{"repeated topic", "/v1/history", tok, url.Values{"topic": {"seller:42", "seller:43"}}, 400},
		{"invalid topic", "/v1/state", tok, url.Values{"topic": {"Seller:1"}}, 400},
		{"limit 0", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "limit": {"0"}}, 400},
		{"limit 101", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "limit": {"101"}}, 400},
		{"limit not a number", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "limit": {"x"}}, 400},
		{"unreadable before", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "before": {"garbage"}}, 400},
		{"before of another topic", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "before": {other}}, 400},
		{"broadcast needs no grant", "/v1/state", tok, url.Values{"topic": {"broadcast"}}, 200},
		{"read scope reads any topic", "/v1/history", reader, url.Values{"topic": {"seller:7"}}, 200},
		{"read scope reads any state", "/v1/state", reader, url.Values{"topic": {"seller:7"}}, 200},
		{"token in the query", "/v1/state", "", url.Values{"topic": {"seller:42"}, "access_token": {tok}}, 200},
	}
	check := func(c tc) {
		t.Helper()
		status, h, b := getJSON(t, r, c.tok, c.path, c.q)
		if status != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.want, b)
		}
		if c.want != 200 && h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content-type %q", c.name, h.Get("Content-Type"))
		}
	}
	for _, c := range cases {
		check(c)
	}
	// 410: the topic's history is gone since the cursor was issued.
	s.Redis.Client().FlushAll(t.Context())
	publish(t, w, pub, []string{"seller:42"}, "order.paid", 2)
	check(tc{"before into lost history", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "before": {d.Head}}, 410})
	s.Redis.Client().FlushAll(t.Context())
	check(tc{"before into an expired topic", "/v1/history", tok, url.Values{"topic": {"seller:42"}, "before": {d.Head}}, 410})

	s.Redis.Kill()
	for _, path := range []string{"/v1/history", "/v1/state"} {
		start := time.Now()
		status, h, _ := getJSON(t, r, tok, path, url.Values{"topic": {"seller:42"}})
		if status != 503 || h.Get("Retry-After") == "" || time.Since(start) > 3*time.Second {
			t.Errorf("%s with Redis gone: %d Retry-After %q after %s, want 503 with Retry-After within 3s", path, status, h.Get("Retry-After"), time.Since(start))
		}
	}
}

// Past STATE_MAX_KEYS a new key drops the least recently updated one from
// the state; its events stay in history.
func TestStateMaxKeys(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"STATE_MAX_KEYS": "3"}), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:1")
	for i, k := range []string{"a", "b", "c", "a", "d", "e"} {
		publishKeyed(t, w, pub, []string{"device:1"}, "s", k, i)
	}
	var keys []string
	for _, e := range readStateDoc(t, r, tok, "device:1").Entries {
		keys = append(keys, *e.Key)
	}
	if fmt.Sprint(keys) != "[a d e]" {
		t.Fatalf("state keys %v, want [a d e] (b and c evicted, least recently updated)", keys)
	}
	if h := readHistoryDoc(t, r, tok, url.Values{"topic": {"device:1"}}); len(h.Events) != 6 {
		t.Fatalf("history holds %d events, want all 6", len(h.Events))
	}
}
