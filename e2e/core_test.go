package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/redisbus"
	"notify/pkg/testwait"
)

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func publish(t *testing.T, w *stack.Proc, tok string, topics []string, typ string, data any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"topics": topics, "type": typ, "data": data})
	status, _, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", tok, string(body), nil)
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("publish: status %d err %v body %s", status, err, resp)
	}
	var out struct{ ID string }
	_ = json.Unmarshal(resp, &out)
	return out.ID
}

func open(t *testing.T, r *stack.Proc, tok string, query string) *stack.Conn {
	t.Helper()
	c, err := stack.Open(t.Context(), r.URL+"/v1/stream"+query, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: status %d", c.Resp.StatusCode)
	}
	return c
}

func expect(t *testing.T, c *stack.Conn, id, topic string) {
	t.Helper()
	ev, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for %s on %s: %v", id, topic, err)
	}
	env, err := stack.DecodeEnvelope(ev)
	if err != nil || env.ID != id || env.Topic != topic {
		t.Fatalf("got event %s %q, want notification %s on %s", ev.Type, ev.Data, id, topic)
	}
}

// Publish through write-api, deliver through read-api, with the stream's
// headers and envelope as docs/api.md describes.
func TestPublishDeliver(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	c := open(t, r, s.SubscriberToken("seller-42", "seller:42"), "")
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := c.Resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	id := publish(t, w, s.PublisherToken("billing"), []string{"seller:42"}, "task.assigned", map[string]int{"taskId": 7})
	ev, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "task.assigned" || ev.ID == "" {
		t.Fatalf("event type %q id %q", ev.Type, ev.ID)
	}
	env, _ := stack.DecodeEnvelope(ev)
	if env.ID != id || env.Topic != "seller:42" || string(env.Data) != `{"taskId":7}` {
		t.Fatalf("envelope %s", ev.Data)
	}
	var full map[string]any
	_ = json.Unmarshal([]byte(ev.Data), &full)
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(full["time"])); err != nil {
		t.Fatalf("time %v: %v", full["time"], err)
	}
}

// Seller A never receives seller B's notification, even on one pod.
func TestIsolation(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	a := open(t, r, s.SubscriberToken("a", "seller:1"), "")
	b := open(t, r, s.SubscriberToken("b", "seller:2"), "")
	pub := s.PublisherToken("svc")
	idB := publish(t, w, pub, []string{"seller:2"}, "t", 1)
	idA := publish(t, w, pub, []string{"seller:1"}, "t", 2)
	expect(t, a, idA, "seller:1") // A's first event is its own: B's never came
	expect(t, b, idB, "seller:2")
	if err := a.Quiet(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Quiet(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// Two read pods on one Redis: a notification reaches the stream on the pod
// that holds it and no other; each pod subscribes only to its own topics;
// broadcast reaches every stream.
func TestTwoPodsRouting(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(nil), s.StartRead(nil)
	c1 := open(t, r1, s.SubscriberToken("d1", "device:1"), "")
	c2 := open(t, r2, s.SubscriberToken("d2", "device:2"), "")
	pub := s.PublisherToken("svc")

	id2 := publish(t, w, pub, []string{"device:2"}, "status", "on")
	expect(t, c2, id2, "device:2")
	if err := c1.Quiet(300 * time.Millisecond); err != nil {
		t.Fatalf("pod 1 stream got pod 2's topic: %v", err)
	}
	idB := publish(t, w, pub, []string{"broadcast"}, "maintenance", "soon")
	expect(t, c1, idB, "broadcast")
	expect(t, c2, idB, "broadcast")

	// Redis knows each channel to be subscribed exactly once: by its pod.
	rc := s.Redis.Client()
	for topic, want := range map[string]int64{"device:1": 1, "device:2": 1, "broadcast": 2, "device:3": 0} {
		ch := redisbus.Keys{Prefix: "notify:"}.Channel(topic)
		got := rc.PubSubNumSub(t.Context(), ch).Val()[ch]
		if got != want {
			t.Errorf("subscribers of %s = %d, want %d", ch, got, want)
		}
	}
	for _, p := range []*stack.Proc{r1, r2} {
		if got := metric(t, p, "notify_read_topics_subscribed"); got != 2 {
			t.Errorf("%s: notify_read_topics_subscribed = %v, want 2", p.URL, got)
		}
		if got := metric(t, p, "notify_read_connections"); got != 1 {
			t.Errorf("%s: notify_read_connections = %v, want 1", p.URL, got)
		}
		// Each pod read its own device's message and the broadcast, not the other's.
		if got := metric(t, p, "notify_read_bus_messages_total"); got != 2 && p == r2 {
			t.Errorf("%s: read %v messages from Redis, want 2", p.URL, got)
		} else if got != 1 && p == r1 {
			t.Errorf("%s: read %v messages from Redis, want 1 (broadcast only)", p.URL, got)
		}
	}
}

// A stream whose headers have arrived receives what is published next,
// every time: subscriptions are live before the response starts.
func TestNoSubscribeRace(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("svc")
	for i := range 30 {
		topic := fmt.Sprintf("seller:race-%d", i) // a new topic: the pod subscribes it now
		c, err := stack.Open(t.Context(), r.URL+"/v1/stream", bearer(s.SubscriberToken("race", topic)))
		if err != nil || c.Resp.StatusCode != http.StatusOK {
			t.Fatalf("open %d: %v", i, err)
		}
		id := publish(t, w, pub, []string{topic}, "t", i)
		expect(t, c, id, topic)
		c.Close()
	}
}

// Two streams share a topic's subscription: closing one keeps the pod
// subscribed (the other keeps receiving); after the last closes, the pod
// holds no topic channel in Redis within 5 s.
func TestUnsubscribeAfterLastStream(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	tok, pub := s.SubscriberToken("u", "seller:1"), s.PublisherToken("svc")
	a, b := open(t, r, tok, ""), open(t, r, tok, "")
	rc := s.Redis.Client()
	ch := redisbus.Keys{Prefix: "notify:"}.Channel("seller:1")
	numsub := func() int64 { return rc.PubSubNumSub(t.Context(), ch).Val()[ch] }
	if n := numsub(); n != 1 {
		t.Fatalf("two streams on one pod: %d subscribers of %s, want 1", n, ch)
	}

	a.Close()
	// Longer than the pod's unsubscribe delay plus its janitor's tick (3 s).
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := numsub(); n != 1 {
			t.Fatalf("one of two streams closed: %d subscribers of %s, want 1", n, ch)
		}
	}
	id := publish(t, w, pub, []string{"seller:1"}, "t", 1)
	expect(t, b, id, "seller:1")

	b.Close()
	closed := time.Now()
	pattern := redisbus.Keys{Prefix: "notify:"}.ChannelPattern()
	testwait.Until(t, 5*time.Second, "no topic channel subscribed after the last stream closed", func() bool {
		chans, err := rc.PubSubChannels(t.Context(), pattern).Result()
		return err == nil && len(chans) == 0
	})
	t.Logf("unsubscribed %s after the last stream closed", time.Since(closed).Round(10*time.Millisecond))
}

// With HISTORY_TTL=1s a topic's history expires a second after its last
// event: resuming with a cursor from before gives stream.reset, then live.
func TestHistoryTTLExpiresHistory(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"HISTORY_TTL": "1s"}), s.StartRead(nil)
	tok, pub := s.SubscriberToken("u", "seller:1"), s.PublisherToken("svc")
	c := open(t, r, tok, "")
	first := publish(t, w, pub, []string{"seller:1"}, "t", 0)
	ev, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if env, _ := stack.DecodeEnvelope(ev); env.ID != first {
		t.Fatalf("first event %s, want %s", ev.Data, first)
	}
	c.Close()

	rc := s.Redis.Client()
	keys := redisbus.Keys{Prefix: "notify:"}
	for _, k := range []string{keys.Meta("seller:1"), keys.History("seller:1")} {
		if ttl := rc.PTTL(t.Context(), k).Val(); ttl <= 0 || ttl > time.Second {
			t.Fatalf("%s: TTL %s, want (0, 1s]", k, ttl)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	testwait.Until(t, 3*time.Second, "history keys expired", func() bool {
		return rc.Exists(t.Context(), keys.Meta("seller:1"), keys.History("seller:1")).Val() == 0
	})

	h := bearer(tok)
	h.Set("Last-Event-ID", ev.ID)
	resumed, err := stack.Open(t.Context(), r.URL+"/v1/stream", h)
	if err != nil || resumed.Resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %v", err)
	}
	defer resumed.Close()
	reset, err := resumed.Next(5 * time.Second)
	if err != nil || reset.Type != "stream.reset" {
		t.Fatalf("first event after expiry: %q %q %v, want stream.reset", reset.Type, reset.Data, err)
	}
	var data struct {
		Topics []string
		Reason string
	}
	if err := json.Unmarshal([]byte(reset.Data), &data); err != nil || !slices.Equal(data.Topics, []string{"seller:1"}) || data.Reason == "" {
		t.Fatalf("stream.reset data %s (%v), want topics [seller:1] and a reason", reset.Data, err)
	}
	id := publish(t, w, pub, []string{"seller:1"}, "t", 1)
	expect(t, resumed, id, "seller:1")
}

// With REDIS_KEY_PREFIX=t9x: on both services, every key and channel they
// create in Redis starts with it, and they still find each other.
func TestKeyPrefix(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	env := map[string]string{"REDIS_KEY_PREFIX": "t9x:"}
	w, r := s.StartWrite(env), s.StartRead(env)
	c := open(t, r, s.SubscriberToken("u", "seller:1"), "")
	pub := s.PublisherToken("svc")
	body := `{"topics":["seller:1"],"type":"t","data":1}`
	status, _, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, map[string]string{"Idempotency-Key": "k1"})
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("publish: status %d err %v body %s", status, err, resp)
	}
	var out struct{ ID string }
	_ = json.Unmarshal(resp, &out)
	expect(t, c, out.ID, "seller:1")
	idB := publish(t, w, pub, []string{"broadcast"}, "t", 2)
	expect(t, c, idB, "broadcast")

	rc := s.Redis.Client()
	var keys []string
	iter := rc.Scan(t.Context(), 0, "*", 100).Iterator()
	for iter.Next(t.Context()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	chans, err := rc.PubSubChannels(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	k := redisbus.Keys{Prefix: "t9x:"}
	for _, tc := range []struct {
		what      string
		got, want []string
	}{
		{"keys", keys, []string{k.Meta("seller:1"), k.History("seller:1"), k.Meta("broadcast"), k.Idempotency("svc", "k1")}},
		{"channels", chans, []string{k.Channel("seller:1"), k.Channel("broadcast")}},
	} {
		what, got := tc.what, tc.got
		for _, name := range tc.want {
			if !slices.Contains(got, name) {
				t.Errorf("%s %v lack %s", what, got, name)
			}
		}
		for _, name := range got {
			if !strings.HasPrefix(name, "t9x:") {
				t.Errorf("%s: %q does not start with the prefix t9x:", what, name)
			}
		}
	}
}

func metric(t *testing.T, p *stack.Proc, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	_, _ = io.Copy(&buf, resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
