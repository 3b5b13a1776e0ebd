package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
)

func postKeyed(t *testing.T, url, tok, key, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header, out.ID
}

// The forced case: an attempt published, but its idempotency record says
// it never finished (as when its answer was lost to a timeout); the topic
// then gets far more events than any recent-history scan would look at.
// The retry publishes nothing: 202 with the first id and
// Idempotent-Replayed, and subscribers get the notification once.
func TestRetryAfterManyEventsDoesNotRepublish(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a := startApp(t, r)
	url := "http://" + a.Addr() + "/v1/notifications"
	tok, _ := devtoken.Publisher(secret, "notifications", "svc", auth.ScopePublish, time.Hour)
	keys := redisbus.Keys{Prefix: "notify:"}
	ctx := t.Context()

	sub := r.Client().Subscribe(ctx, keys.Channel("seller:1"))
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil { // the subscription is live
		t.Fatal(err)
	}
	const body = `{"topics":["seller:1"],"type":"t","data":"once"}`
	status, _, id := postKeyed(t, url, tok, "forced-1", body)
	if status != http.StatusAccepted || id == "" {
		t.Fatalf("first attempt: %d", status)
	}

	rec := keys.Idempotency("svc", "forced-1")
	raw, err := r.Client().Get(ctx, rec).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	fields["done"], fields["lease"] = false, 0 // unfinished, lease lapsed
	raw, _ = json.Marshal(fields)
	if err := r.Client().Set(ctx, rec, raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	const others = 150
	for i := range others {
		if st, _, _ := postKeyed(t, url, tok, fmt.Sprintf("other-%d", i), fmt.Sprintf(`{"topics":["seller:1"],"type":"t","data":%d}`, i)); st != http.StatusAccepted {
			t.Fatalf("other publish %d: %d", i, st)
		}
	}

	status, h, again := postKeyed(t, url, tok, "forced-1", body)
	if status != http.StatusAccepted || again != id || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d id %s (first %s) Idempotent-Replayed %q", status, again, id, h.Get("Idempotent-Replayed"))
	}
	pos, err := redisbus.NewHistory(r.Client(), keys).Positions(ctx, []string{"seller:1"})
	if err != nil || pos[0].Seq != others+1 {
		t.Fatalf("history at %+v %v, want %d events", pos, err, others+1)
	}
	// Every message of the topic, the last one included, has been seen;
	// the notification was among them once.
	copies := 0
	for n := 0; n < others+1; n++ {
		msg, err := sub.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		if m, ok := msg.(*redis.Message); !ok {
			t.Fatalf("unexpected %T %v", msg, msg)
		} else if strings.Contains(m.Payload, `"id":"`+id+`"`) {
			copies++
		}
	}
	if copies != 1 {
		t.Fatalf("the notification was published %d times", copies)
	}
	if msg, err := sub.ReceiveTimeout(ctx, 200*time.Millisecond); err == nil {
		t.Fatalf("one message more than published: %v", msg)
	}
}
