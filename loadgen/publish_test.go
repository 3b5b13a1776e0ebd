package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A topic a paced run does not reach keeps the last n it started from,
// so the next run continues its sequence instead of repeating n.
func TestPublishKeepsUnreachedTopicsSequence(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	// Rate 1/s for 300 ms: only notification 0 (topic a) is due.
	r := Publish(context.Background(), Target{URL: srv.URL, Baseline: true},
		PubConfig{Topics: []string{"a", "b"}, Rate: 1, Duration: 300 * time.Millisecond, Seq: true, SeqStart: []int64{5, 7}})
	if r.Accepted != 1 || r.LastN[0] != 6 || r.LastN[1] != 7 {
		t.Fatalf("accepted %d, last n %v; want 1, [6 7]", r.Accepted, r.LastN)
	}
}

// A publish whose outcome is unknown (503) is sent again with the same
// body and Idempotency-Key until it is accepted.
func TestPublishRetriesWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	type req struct{ key, body string }
	reqs := make(chan req, 10)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- req{r.Header.Get("Idempotency-Key"), string(b)}
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	r := Publish(context.Background(), Target{URL: srv.URL, Token: "t"},
		PubConfig{Topics: []string{"a"}, Rate: 1, Duration: 300 * time.Millisecond, Seq: true, Retry: 5 * time.Second})
	if r.Accepted != 1 || r.Errors != 0 || r.Retried != 2 || r.LastN[0] != 1 {
		t.Fatalf("accepted %d, errors %d, retried %d, last n %v; want 1, 0, 2, [1]", r.Accepted, r.Errors, r.Retried, r.LastN)
	}
	first := <-reqs
	for range 2 {
		if again := <-reqs; first.key == "" || again != first {
			t.Fatalf("retry %+v differs from the first attempt %+v", again, first)
		}
	}
}
