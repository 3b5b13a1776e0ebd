package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/devtoken"
)

// expectCursor is expect that also returns the event's SSE id, the cursor
// a client would resume from.
func expectCursor(t *testing.T, c *stack.Conn, id, topic string) string {
	t.Helper()
	ev, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for %s on %s: %v", id, topic, err)
	}
	env, err := stack.DecodeEnvelope(ev)
	if err != nil || env.ID != id || env.Topic != topic || ev.ID == "" {
		t.Fatalf("got event %s id %q %q, want notification %s on %s with a cursor", ev.Type, ev.ID, ev.Data, id, topic)
	}
	return ev.ID
}

// A cursor never grants access: resuming a two-topic stream's cursor with a
// token for one of them replays exactly what was missed on that topic and
// broadcast, nothing of the other; an expired token with the cursor gets
// 401 and no stream.
func TestCursorNeverGrantsAccess(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("svc")
	both := open(t, r, s.SubscriberToken("u", "seller:1", "seller:2"), "")
	var cursor string
	for _, topic := range []string{"seller:1", "seller:2"} {
		cursor = expectCursor(t, both, publish(t, w, pub, []string{topic}, "t", 0), topic)
	}
	both.Close()

	want := map[string][]string{}
	for i, topic := range []string{"seller:1", "seller:2", "broadcast", "seller:2", "seller:1", "seller:2"} {
		want[topic] = append(want[topic], publish(t, w, pub, []string{topic}, "t", i))
	}
	only1 := s.SubscriberToken("u", "seller:1")
	h := bearer(only1)
	h.Set("Last-Event-ID", cursor)
	resumed, err := stack.Open(t.Context(), r.URL+"/v1/stream", h)
	if err != nil || resumed.Resp.StatusCode != http.StatusOK {
		t.Fatalf("resume with a narrower token: %v", err)
	}
	defer resumed.Close()
	got := map[string][]string{}
	for range len(want["seller:1"]) + len(want["broadcast"]) {
		ev, err := resumed.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("replay: %v after %v", err, got)
		}
		env, _ := stack.DecodeEnvelope(ev)
		if env.Topic == "seller:2" {
			t.Fatalf("replayed %s on seller:2, which the token does not grant", env.ID)
		}
		got[env.Topic] = append(got[env.Topic], env.ID)
	}
	for _, topic := range []string{"seller:1", "broadcast"} {
		if !slices.Equal(got[topic], want[topic]) {
			t.Errorf("replay of %s: got %v, want %v", topic, got[topic], want[topic])
		}
	}
	// Replay comes before live: anything more it held (seller:2, a
	// duplicate) would arrive before this.
	live := publish(t, w, pub, []string{"seller:1"}, "t", "live")
	expect(t, resumed, live, "seller:1")

	// Asking for the other topic with the cursor is still forbidden.
	h = bearer(only1)
	h.Set("Last-Event-ID", cursor)
	refusedStream(t, r.URL+"/v1/stream?topic=seller:2", h, http.StatusForbidden)

	// An expired token with a valid cursor: 401, never an anonymous stream.
	expired, err := devtoken.Subscriber(stack.Secret, "notifications", "u", []string{"seller:1", "seller:2"}, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h = bearer(expired)
	h.Set("Last-Event-ID", cursor)
	refusedStream(t, r.URL+"/v1/stream", h, http.StatusUnauthorized)
	refusedStream(t, r.URL+"/v1/stream?access_token="+expired+"&lastEventId="+url.QueryEscape(cursor), nil, http.StatusUnauthorized)
}

// refusedStream checks that a stream request gets status as problem+json
// and no event stream.
func refusedStream(t *testing.T, u string, h http.Header, status int) {
	t.Helper()
	c, err := stack.Open(t.Context(), u, h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Resp.StatusCode != status || c.Resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %q, want %d application/problem+json", c.Resp.StatusCode, c.Resp.Header.Get("Content-Type"), status)
	}
	body, _ := io.ReadAll(io.LimitReader(c.Resp.Body, 1<<16))
	var p struct{ Status int }
	if err := json.Unmarshal(body, &p); err != nil || p.Status != status {
		t.Fatalf("problem body %q: %v", body, err)
	}
}

// Last-Event-ID and lastEventId given together with different cursors: the
// header's wins.
func TestLastEventIDHeaderWinsOverQuery(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	tok, pub := s.SubscriberToken("u", "seller:1"), s.PublisherToken("svc")
	c := open(t, r, tok, "")
	var ids, cursors []string
	for i := range 3 {
		ids = append(ids, publish(t, w, pub, []string{"seller:1"}, "t", i))
		cursors = append(cursors, expectCursor(t, c, ids[i], "seller:1"))
	}
	c.Close()
	h := bearer(tok)
	h.Set("Last-Event-ID", cursors[1])
	resumed, err := stack.Open(t.Context(), r.URL+"/v1/stream?lastEventId="+url.QueryEscape(cursors[0]), h)
	if err != nil || resumed.Resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %v", err)
	}
	defer resumed.Close()
	// The query's cursor would replay ids[1] first; no replay at all would
	// give the live event first.
	expect(t, resumed, ids[2], "seller:1")
	live := publish(t, w, pub, []string{"seller:1"}, "t", "live")
	expect(t, resumed, live, "seller:1")
}
