package main

import (
	"context"
	"net/http"
	"net/http/httptest"
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
