package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// recorder is a fake write-api that answers from a script, one response
// per attempt, and records the requests.
type recorder struct {
	mu     sync.Mutex
	script []func(w http.ResponseWriter)
	reqs   []*http.Request
	bodies []map[string]any
	at     []time.Time
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	n := len(rec.reqs)
	rec.reqs = append(rec.reqs, r)
	rec.at = append(rec.at, time.Now())
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	rec.bodies = append(rec.bodies, body)
	step := rec.script[min(n, len(rec.script)-1)]
	rec.mu.Unlock()
	step(w)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprint(w, `{"id":"id-1","topics":["seller:42"]}`)
}

func problemResp(status int, retryAfter string, extra string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"urn:notify:problem:x","title":"T%d","status":%d,"detail":"d%d"%s}`, status, status, status, extra)
	}
}

func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func start(t *testing.T, script ...func(http.ResponseWriter)) (*recorder, *Client) {
	t.Helper()
	rec := &recorder{script: script}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := New(srv.URL+"/", WithToken("tok"), WithRetry(Retry{Initial: 10 * time.Millisecond, Max: 2 * time.Second}))
	return rec, c
}

var note = Notification{Topics: []string{"seller:42"}, Type: "task.assigned", Data: map[string]int{"taskId": 7}}

func TestPublishSendsContract(t *testing.T) {
	t.Parallel()
	rec, c := start(t, accepted)
	res, err := c.Publish(t.Context(), note)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "id-1" || len(res.Topics) != 1 {
		t.Fatalf("result %+v", res)
	}
	r := rec.reqs[0]
	if r.Method != http.MethodPost || r.URL.Path != "/v1/notifications" {
		t.Fatalf("%s %s", r.Method, r.URL.Path)
	}
	for k, want := range map[string]string{"Authorization": "Bearer tok", "Content-Type": "application/json"} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if k := r.Header.Get("Idempotency-Key"); len(k) != 32 {
		t.Errorf("auto Idempotency-Key %q", k)
	}
	if got := fmt.Sprint(rec.bodies[0]); got != "map[data:map[taskId:7] topics:[seller:42] type:task.assigned]" {
		t.Errorf("body %s", got)
	}
}

func TestRetryOn503HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	rec, c := start(t, problemResp(503, "1", ""), accepted)
	res, err := c.Publish(t.Context(), note)
	if err != nil || res.ID != "id-1" {
		t.Fatalf("res %+v err %v", res, err)
	}
	if rec.count() != 2 {
		t.Fatalf("%d attempts, want 2", rec.count())
	}
	if gap := rec.at[1].Sub(rec.at[0]); gap < 950*time.Millisecond {
		t.Errorf("retried after %s, Retry-After asked 1s", gap)
	}
	if k0, k1 := rec.reqs[0].Header.Get("Idempotency-Key"), rec.reqs[1].Header.Get("Idempotency-Key"); k0 != k1 {
		t.Errorf("retry changed the idempotency key: %q then %q", k0, k1)
	}
}

func TestRetryOn429AndNetworkErrors(t *testing.T) {
	t.Parallel()
	rec, c := start(t, problemResp(429, "", ""), hangUp, accepted)
	if _, err := c.Publish(t.Context(), note, IdempotencyKey("k-1")); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 3 {
		t.Fatalf("%d attempts, want 3", rec.count())
	}
	for i, r := range rec.reqs {
		if k := r.Header.Get("Idempotency-Key"); k != "k-1" {
			t.Errorf("attempt %d: Idempotency-Key %q", i, k)
		}
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 401, 403, 413, 415, 422} {
		rec, c := start(t, problemResp(status, "", ""), accepted)
		_, err := c.Publish(t.Context(), note)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%d: error %v is not *Error", status, err)
		}
		if pe.Status != status || pe.Type != "urn:notify:problem:x" || pe.Title != fmt.Sprintf("T%d", status) || pe.Detail != fmt.Sprintf("d%d", status) {
			t.Errorf("%d: %+v", status, pe)
		}
		if rec.count() != 1 {
			t.Errorf("%d: %d attempts, want 1", status, rec.count())
		}
	}
}

func TestBatchProblemIndex(t *testing.T) {
	t.Parallel()
	rec, c := start(t, problemResp(400, "", `,"index":2`))
	_, err := c.PublishBatch(t.Context(), []Notification{note, note, {Type: "x"}})
	var pe *Error
	if !errors.As(err, &pe) || pe.Index == nil || *pe.Index != 2 {
		t.Fatalf("error %v", err)
	}
	if rec.reqs[0].URL.Path != "/v1/notifications/batch" || len(rec.bodies[0]["notifications"].([]any)) != 3 {
		t.Fatalf("request %s %v", rec.reqs[0].URL.Path, rec.bodies[0])
	}
}

func TestBatchIDs(t *testing.T) {
	t.Parallel()
	_, c := start(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"ids":["a","b"]}`)
	})
	ids, err := c.PublishBatch(t.Context(), []Notification{note, note})
	if err != nil || fmt.Sprint(ids) != "[a b]" {
		t.Fatalf("ids %v err %v", ids, err)
	}
}

func TestReplayed(t *testing.T) {
	t.Parallel()
	_, c := start(t, func(w http.ResponseWriter) {
		w.Header().Set("Idempotent-Replayed", "true")
		accepted(w)
	})
	res, err := c.Publish(t.Context(), note)
	if err != nil || !res.Replayed {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestContextCancelStopsWaiting(t *testing.T) {
	t.Parallel()
	rec, c := start(t, problemResp(503, "2", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.Publish(ctx, note)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want deadline exceeded", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != 503 {
		t.Errorf("error %v should carry the last problem", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("returned after %s", d)
	}
	if rec.count() != 1 {
		t.Errorf("%d attempts, want 1", rec.count())
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	rec := &recorder{script: []func(http.ResponseWriter){problemResp(503, "", "")}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := New(srv.URL, WithToken("tok"), WithRetry(Retry{MaxAttempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}))
	_, err := c.Publish(t.Context(), note)
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != 503 || rec.count() != 3 {
		t.Fatalf("error %v after %d attempts", err, rec.count())
	}
}

func TestTokenSourcePerAttempt(t *testing.T) {
	t.Parallel()
	rec := &recorder{script: []func(http.ResponseWriter){problemResp(503, "", ""), accepted}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	n := 0
	src := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("t%d", n), nil
	}
	c := New(srv.URL, WithTokenSource(src), WithRetry(Retry{Initial: time.Millisecond}))
	if _, err := c.Publish(t.Context(), note); err != nil {
		t.Fatal(err)
	}
	if a, b := rec.reqs[0].Header.Get("Authorization"), rec.reqs[1].Header.Get("Authorization"); a != "Bearer t1" || b != "Bearer t2" {
		t.Fatalf("tokens %q %q", a, b)
	}
	if _, err := New(srv.URL).Publish(t.Context(), note); !errors.Is(err, ErrNoToken) {
		t.Fatalf("no token source: %v", err)
	}
}

// 409 says an earlier attempt is still being settled: the client keeps
// asking (within MaxElapsed) without using up attempts, and reports the
// server's replay.
func TestConflictDoesNotUseUpAttempts(t *testing.T) {
	t.Parallel()
	replayed := func(w http.ResponseWriter) {
		w.Header().Set("Idempotent-Replayed", "true")
		accepted(w)
	}
	script := []func(http.ResponseWriter){problemResp(503, "", "")}
	for range 5 {
		script = append(script, problemResp(409, "", ""))
	}
	rec := &recorder{script: append(script, replayed)}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := New(srv.URL, WithToken("tok"), WithRetry(Retry{MaxAttempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond}))
	res, err := c.Publish(t.Context(), note)
	if err != nil || !res.Replayed || rec.count() != 7 {
		t.Fatalf("%+v %v after %d requests", res, err, rec.count())
	}
	keys := map[string]bool{}
	for _, r := range rec.reqs {
		keys[r.Header.Get("Idempotency-Key")] = true
	}
	if len(keys) != 1 {
		t.Fatalf("%d idempotency keys over one call's attempts", len(keys))
	}
}
