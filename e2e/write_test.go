package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/auth"
	"notify/pkg/devtoken"
)

// Every bad request gets its problem+json status and publishes nothing.
func TestWriteAPIValidation(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"MAX_DATA_BYTES": "100", "MAX_BATCH": "3"}), s.StartRead(nil)
	pub := s.PublisherToken("svc")
	noBroadcast, _ := devtoken.Publisher(stack.Secret, "notifications", "svc", auth.ScopePublish, time.Hour)
	noScope, _ := devtoken.Publisher(stack.Secret, "notifications", "svc", "other", time.Hour)
	watch := open(t, r, s.SubscriberToken("watch", "seller:1"), "")

	big := `"` + strings.Repeat("x", 200) + `"`
	tests := []struct {
		name, path, token, ctype, body string
		want                           int
	}{
		{"malformed json", "", pub, "", `{"topics":`, 400},
		{"unknown field", "", pub, "", `{"topics":["seller:1"],"type":"t","data":1,"x":1}`, 400},
		{"no topics", "", pub, "", `{"topics":[],"type":"t","data":1}`, 400},
		{"bad topic", "", pub, "", `{"topics":["Seller:1"],"type":"t","data":1}`, 400},
		{"topic with newline", "", pub, "", `{"topics":["seller:1\nx"],"type":"t","data":1}`, 400},
		{"101 topics", "", pub, "", `{"topics":[` + topicsJSON(101) + `],"type":"t","data":1}`, 400},
		{"bad type", "", pub, "", `{"topics":["seller:1"],"type":"a b","data":1}`, 400},
		{"reserved type", "", pub, "", `{"topics":["seller:1"],"type":"stream.reset","data":1}`, 400},
		{"data too large", "", pub, "", `{"topics":["seller:1"],"type":"t","data":` + big + `}`, 413},
		{"body over 1 MiB", "", pub, "", `{"topics":["seller:1"],"type":"t","data":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
		{"not json", "", pub, "text/plain", `{"topics":["seller:1"],"type":"t","data":1}`, 415},
		{"no token", "", "", "", `{"topics":["seller:1"],"type":"t","data":1}`, 401},
		{"garbage token", "", "abc.def.ghi", "", `{"topics":["seller:1"],"type":"t","data":1}`, 401},
		{"no publish scope", "", noScope, "", `{"topics":["seller:1"],"type":"t","data":1}`, 403},
		{"broadcast without scope", "", noBroadcast, "", `{"topics":["broadcast"],"type":"t","data":1}`, 403},
		{"batch too large", "/batch", pub, "", `{"notifications":[` + strings.Repeat(`{"topics":["seller:1"],"type":"t","data":1},`, 3) + `{"topics":["seller:1"],"type":"t","data":1}]}`, 400},
		{"batch with one bad item", "/batch", pub, "", `{"notifications":[{"topics":["seller:1"],"type":"t","data":1},{"topics":["bad"],"type":"t","data":1}]}`, 400},
	}
	for _, tc := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL+"/v1/notifications"+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", cmp.Or(tc.ctype, "application/json"))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var p struct {
			Type, Title, Detail string
			Status              int
			Index               *int
		}
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tc.want || p.Status != tc.want || resp.Header.Get("Content-Type") != "application/problem+json" || p.Title == "" || p.Type == "" {
			t.Errorf("%s: status %d (problem %+v, content-type %q), want %d", tc.name, resp.StatusCode, p, resp.Header.Get("Content-Type"), tc.want)
		}
		if tc.name == "batch with one bad item" && (p.Index == nil || *p.Index != 1) {
			t.Errorf("%s: problem names index %v, want 1", tc.name, p.Index)
		}
	}
	if err := watch.Quiet(300 * time.Millisecond); err != nil {
		t.Fatalf("a rejected request published something: %v", err)
	}
}

// The same Idempotency-Key publishes once; another body with it is 422.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	c := open(t, r, s.SubscriberToken("s", "seller:9"), "")
	pub := s.PublisherToken("svc")
	body := `{"topics":["seller:9"],"type":"t","data":1}`
	key := map[string]string{"Idempotency-Key": "order-77"}
	st1, _, b1, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, key)
	st2, h2, b2, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, key)
	if st1 != 202 || st2 != 202 || string(b1) != string(b2) || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s / %d %s replayed=%q", st1, b1, st2, b2, h2.Get("Idempotent-Replayed"))
	}
	st3, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, `{"topics":["seller:9"],"type":"t","data":2}`, key)
	if st3 != 422 {
		t.Fatalf("other body with the same key: status %d, want 422", st3)
	}
	// Another publisher may use the same key for its own request.
	other := s.PublisherToken("other-svc")
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", other, `{"topics":["seller:9"],"type":"t","data":3}`, key); st != 202 {
		t.Fatalf("same key, other publisher: status %d", st)
	}
	var first struct{ ID string }
	_ = json.Unmarshal(b1, &first)
	expect(t, c, first.ID, "seller:9")
	ev, err := c.Next(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if env, _ := stack.DecodeEnvelope(ev); string(env.Data) != "3" {
		t.Fatalf("second delivered event has data %s, want the other publisher's 3 (the replay must publish nothing)", env.Data)
	}
}

// A batch is accepted as a whole; ids come back in order and arrive in order.
func TestBatch(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	c := open(t, r, s.SubscriberToken("s", "seller:5"), "")
	items := make([]string, 20)
	for i := range items {
		items[i] = fmt.Sprintf(`{"topics":["seller:5","seller:5"],"type":"t","data":%d}`, i)
	}
	st, _, b, _ := stack.Post(t.Context(), w.URL+"/v1/notifications/batch", s.PublisherToken("svc"), `{"notifications":[`+strings.Join(items, ",")+`]}`, nil)
	var out struct{ IDs []string }
	if err := json.Unmarshal(b, &out); err != nil || st != 202 || len(out.IDs) != 20 {
		t.Fatalf("batch: %d %s", st, b)
	}
	for _, id := range out.IDs {
		expect(t, c, id, "seller:5")
	}
}

func topicsJSON(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"seller:%d"`, i)
	}
	return strings.Join(parts, ",")
}
