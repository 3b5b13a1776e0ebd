package app

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// plainWriter is a ResponseWriter whose connection net/http cannot give
// away, as on HTTP/2: it has no Hijack. It records what the client got.
type plainWriter struct {
	mu     sync.Mutex
	header http.Header
	status int
	sent   http.Header // the header at WriteHeader
	body   bytes.Buffer
}

func (w *plainWriter) Header() http.Header { return w.header }
func (w *plainWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.status, w.sent = code, w.header.Clone()
	}
}
func (w *plainWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(b)
}
func (w *plainWriter) Flush() {}

func (w *plainWriter) received() (status int, contentType string, body []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.sent.Get("Content-Type"), bytes.Clone(w.body.Bytes())
}

// A stream whose connection stays with net/http runs the same way through
// net/http's writer: its events arrive while the handler waits, and the
// client's hang-up ends it, lets the handler return and undoes every
// registration: hub members, the subject's stream count, the connections
// gauge.
func TestStreamThroughNetHTTP(t *testing.T) {
	r := redistest.Start(t)
	a, stop := runAppEnv(t, r, zap.NewNop(), map[string]string{"MAX_CONNECTIONS_PER_SUBJECT": "1"})
	t.Cleanup(stop)
	tok, err := devtoken.Subscriber(secret, "notifications", "plain", []string{"seller:plain"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, hangUp := context.WithCancel(t.Context())
	defer hangUp()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/stream?topic=seller:plain", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := &plainWriter{header: http.Header{}}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		a.srv.Handler.ServeHTTP(w, req)
	}()
	testwait.Until(t, 5*time.Second, "the stream's head", func() bool {
		_, _, body := w.received()
		return bytes.HasPrefix(body, []byte("retry: "))
	})
	if status, ct, _ := w.received(); status != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", status, ct)
	}

	pub := redisbus.NewPublisher(r.Client(), redisbus.Keys{Prefix: "notify:"}, redisbus.PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour})
	publish(t, pub, "seller:plain", time.Now())
	testwait.Until(t, 5*time.Second, "the event", func() bool {
		_, _, body := w.received()
		return bytes.Contains(body, []byte("event: t.x\n"))
	})
	select {
	case <-returned:
		t.Fatal("the handler returned while its stream was live")
	default:
	}
	if n := a.Streams(); n != 1 {
		t.Fatalf("%d streams open, want 1", n)
	}
	if got := scrape(t, a.Addr())["notify_read_connections"]; got != 1 {
		t.Fatalf("connections gauge %v while streaming, want 1", got)
	}
	if status := streamStatus(t, a.Addr(), tok); status != http.StatusTooManyRequests {
		t.Fatalf("a second stream of the subject got %d, want 429 (its one stream is open)", status)
	}

	hangUp()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return after the client hung up")
	}
	if n, members := a.Streams(), a.Hub().Members(); n != 0 || members != 0 {
		t.Fatalf("%d streams and %d hub members left after the handler returned", n, members)
	}
	m := scrape(t, a.Addr())
	if got := m["notify_read_connections"]; got != 0 {
		t.Errorf("connections gauge %v after the hang-up, want 0", got)
	}
	if got := m[`notify_read_streams_closed_total{reason="client_gone"}`]; got != 1 {
		t.Errorf("%v streams closed as client_gone, want 1", got)
	}
	c, _ := openRaw(t, a.Addr(), tok) // the subject's slot is free again
	_ = c.Close()
}

// streamStatus is the status a stream request of tok is answered with.
func streamStatus(t *testing.T, addr, tok string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
