package sseclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

const testTimeout = 5 * time.Second

// sseServer serves handle(n, w, r) for the n-th request (from 1) as an
// event stream on 127.0.0.1.
func sseServer(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1))
		handle(n, w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func writeSSE(w http.ResponseWriter, frames ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, f := range frames {
		_, _ = io.WriteString(w, f)
	}
	w.(http.Flusher).Flush()
}

func newStream(t *testing.T, srv *httptest.Server, cfg Config) *Stream {
	t.Helper()
	cfg.HTTPClient = srv.Client()
	if cfg.URL == "" && cfg.NewRequest == nil {
		cfg.URL = srv.URL
	}
	if cfg.ReconnectDelay == 0 {
		cfg.ReconnectDelay = time.Millisecond
	}
	s, err := NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended early")
		}
		return ev
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting for an event")
	}
	return Event{}
}

func runErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(testTimeout):
		t.Fatal("Run did not return")
	}
	return nil
}

func TestReconnectResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	srv, hits := sseServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Cache-Control") != "no-cache" {
			http.Error(w, "bad request headers", http.StatusBadRequest)
			return
		}
		switch n {
		case 1:
			if got := r.Header.Get("Last-Event-ID"); got != "" {
				http.Error(w, "unexpected Last-Event-ID "+got, http.StatusBadRequest)
				return
			}
			writeSSE(w, "retry: 1\n\n", "id: 1\ndata: a\n\n", "id: 2\n\n") // then close
		case 2:
			if got := r.Header.Get("Last-Event-ID"); got != "2" {
				http.Error(w, "Last-Event-ID "+got, http.StatusBadRequest)
				return
			}
			writeSSE(w, "id: 3\nevent: x\ndata: b\n\n")
			<-r.Context().Done()
		default:
			http.Error(w, "too many", http.StatusBadRequest)
		}
	})
	s := newStream(t, srv, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	events, errc := s.Start(ctx, 4)
	if ev := recv(t, events); ev != msg("1", "a") {
		t.Fatalf("first event %#v", ev)
	}
	if ev := recv(t, events); ev != (Event{ID: "3", Type: "x", Data: "b"}) {
		t.Fatalf("second event %#v", ev)
	}
	cancel()
	if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if s.Reconnects() != 1 || s.Connections() != 2 || hits.Load() != 2 || s.LastEventID() != "3" {
		t.Fatalf("reconnects %d connections %d hits %d last id %q", s.Reconnects(), s.Connections(), hits.Load(), s.LastEventID())
	}
}

func TestNewRequestPerAttempt(t *testing.T) {
	t.Parallel()
	srv, _ := sseServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		want := fmt.Sprintf("Bearer t%d", n)
		if got := r.Header.Get("Authorization"); got != want {
			http.Error(w, got, http.StatusUnauthorized)
			return
		}
		if n == 2 && (r.URL.Query().Get("lastEventId") != "e1" || r.Header.Get("Last-Event-ID") != "e1") {
			http.Error(w, "no resume", http.StatusBadRequest)
			return
		}
		writeSSE(w, "id: e"+strconv.Itoa(n)+"\ndata: x\n\n")
	})
	var token atomic.Int64
	s := newStream(t, srv, Config{
		NewRequest: func(ctx context.Context, lastID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/stream?lastEventId="+lastID, nil)
			if err == nil {
				req.Header.Set("Authorization", fmt.Sprintf("Bearer t%d", token.Add(1)))
			}
			return req, err
		},
	})
	var got []string
	err := s.Run(t.Context(), func(ev Event) error {
		got = append(got, ev.ID)
		if len(got) == 2 {
			return io.ErrShortBuffer // any caller error stops the stream
		}
		return nil
	})
	if !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("Run = %v", err)
	}
	if fmt.Sprint(got) != "[e1 e2]" {
		t.Fatalf("ids %v", got)
	}
}

func TestRetryFieldSetsDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame string
		max   time.Duration
		want  time.Duration
	}{
		{"server retry", "retry: 40\n\n", 0, 40 * time.Millisecond},
		{"capped", "retry: 999999\n\n", 30 * time.Millisecond, 30 * time.Millisecond},
		{"default without retry", ": hi\n\n", 0, 7 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var closedAt atomic.Int64
			srv, _ := sseServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					writeSSE(w, tt.frame)
					closedAt.Store(time.Now().UnixNano())
					return
				}
				writeSSE(w, "data: again\n\n")
			})
			var wait time.Duration
			s := newStream(t, srv, Config{
				ReconnectDelay: 7 * time.Millisecond,
				MaxDelay:       tt.max,
				OnRetry:        func(_ error, d time.Duration) error { wait = d; return nil },
			})
			var elapsed time.Duration
			err := s.Run(t.Context(), func(Event) error {
				elapsed = time.Since(time.Unix(0, closedAt.Load()))
				return io.EOF
			})
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Run = %v", err)
			}
			if wait != tt.want {
				t.Fatalf("wait = %v, want %v", wait, tt.want)
			}
			if elapsed < tt.want {
				t.Fatalf("reconnected after %v, before the %v delay", elapsed, tt.want)
			}
		})
	}
}

func TestFailTheConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		ctype  string
		retry  bool // RetryResponse = RetryUnavailable
	}{
		{"204 stops", http.StatusNoContent, "", false},
		{"204 stops even with retry option", http.StatusNoContent, "", true},
		{"401 problem", http.StatusUnauthorized, "application/problem+json", false},
		{"503 without option", http.StatusServiceUnavailable, "application/problem+json", false},
		{"200 wrong type", http.StatusOK, "text/plain", true},
		{"201 event stream", http.StatusCreated, "text/event-stream", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, hits := sseServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, `{"status":1}`)
			})
			cfg := Config{}
			if tt.retry {
				cfg.RetryResponse = RetryUnavailable
			}
			err := newStream(t, srv, cfg).Run(t.Context(), func(Event) error { return nil })
			var re *ResponseError
			if !errors.As(err, &re) || !errors.Is(err, ErrFailed) {
				t.Fatalf("Run = %v, want *ResponseError", err)
			}
			if re.StatusCode != tt.status || hits.Load() != 1 {
				t.Fatalf("status %d hits %d", re.StatusCode, hits.Load())
			}
			if tt.status != http.StatusNoContent && string(re.Body) != `{"status":1}` {
				t.Fatalf("body %q", re.Body)
			}
		})
	}
}

func TestRetryUnavailableHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	srv, _ := sseServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusTooManyRequests) // no Retry-After: backoff doubles
		default:
			writeSSE(w, "data: ok\n\n")
		}
	})
	var waits []time.Duration
	s := newStream(t, srv, Config{
		ReconnectDelay: 10 * time.Millisecond,
		MaxDelay:       60 * time.Millisecond, // caps Retry-After: 1s
		RetryResponse:  RetryUnavailable,
		OnRetry: func(err error, d time.Duration) error {
			if !errors.Is(err, ErrFailed) {
				t.Errorf("OnRetry err %v", err)
			}
			waits = append(waits, d)
			return nil
		},
	})
	err := s.Run(t.Context(), func(Event) error { return io.EOF })
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Run = %v", err)
	}
	if fmt.Sprint(waits) != "[60ms 60ms]" || s.Reconnects() != 2 || s.Connections() != 1 {
		t.Fatalf("waits %v reconnects %d connections %d", waits, s.Reconnects(), s.Connections())
	}
}

func TestCommentsAndOnOpen(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := sseServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		writeSSE(w, "retry: 1000\n\n")
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		writeSSE(w, ": heartbeat\n\n")
		<-r.Context().Done()
	})
	opened := make(chan struct{})
	s := newStream(t, srv, Config{Comments: true, OnOpen: func(*http.Response) { close(opened) }})
	ctx, cancel := context.WithCancel(t.Context())
	events, errc := s.Start(ctx, 0)
	select {
	case <-opened:
	case <-time.After(testTimeout):
		t.Fatal("OnOpen not called")
	}
	close(release)
	if ev := recv(t, events); ev != (Event{Comment: true, Data: " heartbeat"}) {
		t.Fatalf("got %#v", ev)
	}
	cancel()
	if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

func TestCancelReturnsPromptly(t *testing.T) {
	t.Parallel()
	for _, phase := range []string{"streaming", "waiting"} {
		t.Run(phase, func(t *testing.T) {
			t.Parallel()
			srv, _ := sseServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				writeSSE(w, "data: x\n\n")
				if phase == "streaming" {
					<-r.Context().Done()
				}
			})
			s := newStream(t, srv, Config{ReconnectDelay: time.Hour, MaxDelay: time.Hour})
			ctx, cancel := context.WithCancel(t.Context())
			events, errc := s.Start(ctx, 1)
			recv(t, events)
			time.Sleep(20 * time.Millisecond) // let the second phase begin
			start := time.Now()
			cancel()
			if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Run took %v after cancel", d)
			}
		})
	}
}

func TestIdleTimeoutReconnects(t *testing.T) {
	t.Parallel()
	srv, _ := sseServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		writeSSE(w, "data: "+strconv.Itoa(n)+"\n\n")
		<-r.Context().Done() // silent: the client must give up on it
	})
	var reasons []error
	s := newStream(t, srv, Config{
		IdleTimeout: 50 * time.Millisecond,
		OnRetry:     func(err error, _ time.Duration) error { reasons = append(reasons, err); return nil },
	})
	var got []string
	err := s.Run(t.Context(), func(ev Event) error {
		got = append(got, ev.Data)
		if len(got) == 2 {
			return io.EOF
		}
		return nil
	})
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("Run = %v, events %v", err, got)
	}
	if len(reasons) != 1 || !errors.Is(reasons[0], ErrIdle) {
		t.Fatalf("retry reasons %v", reasons)
	}
}

func TestNetworkErrorBacksOff(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	var waits []time.Duration
	s, err := NewStream(Config{
		URL:            url,
		ReconnectDelay: time.Millisecond,
		MaxDelay:       time.Second,
		OnRetry: func(_ error, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 3 {
				return io.EOF
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := s.Run(ctx, func(Event) error { return nil }); !errors.Is(err, io.EOF) {
		t.Fatalf("Run = %v", err)
	}
	if fmt.Sprint(waits) != "[1ms 200ms 400ms]" {
		t.Fatalf("waits %v", waits)
	}
}

func TestConfigAndRunning(t *testing.T) {
	t.Parallel()
	if _, err := NewStream(Config{}); err == nil {
		t.Fatal("no URL accepted")
	}
	if _, err := NewStream(Config{URL: "http://x", Jitter: 2}); err == nil {
		t.Fatal("jitter 2 accepted")
	}
	srv, _ := sseServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		writeSSE(w, "data: x\n\n")
		<-r.Context().Done()
	})
	s := newStream(t, srv, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, errc := s.Start(ctx, 1)
	recv(t, events)
	if err := s.Run(ctx, nil); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v", err)
	}
	cancel()
	runErr(t, errc)
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		base       time.Duration
		failures   int
		retryAfter time.Duration
		want       time.Duration
	}{
		{3000 * ms, 0, 0, 3000 * ms},
		{3000 * ms, 1, 0, 3000 * ms},
		{3000 * ms, 2, 0, 6000 * ms},
		{3000 * ms, 10, 0, 10000 * ms},
		{0, 0, 0, 0},
		{0, 3, 0, 400 * ms},
		{50 * ms, 1, 2000 * ms, 2000 * ms},
		{50 * ms, 1, time.Hour, 10000 * ms},
	}
	for _, tt := range tests {
		if got := waitFor(tt.base, tt.failures, tt.retryAfter, 10*time.Second, 0); got != tt.want {
			t.Errorf("waitFor(%v, %d, %v) = %v, want %v", tt.base, tt.failures, tt.retryAfter, got, tt.want)
		}
	}
	for range 100 {
		if got := waitFor(time.Second, 0, 0, time.Minute, 0.5); got < 500*ms || got > time.Second {
			t.Fatalf("jittered wait %v outside [0.5s, 1s]", got)
		}
		if got := waitFor(time.Second, 0, 800*ms, time.Minute, 0.5); got < 800*ms {
			t.Fatalf("jitter undercut Retry-After: %v", got)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 2 ":                           2 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 00:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestNoGoroutineLeak is not parallel: it counts goroutines. Parallel tests
// are paused while it runs, so the count is stable.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeSSE(w, "retry: 1\nid: 1\ndata: x\n\n")
			if r.Header.Get("Last-Event-ID") != "" {
				<-r.Context().Done()
			}
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		for range 3 {
			s, err := NewStream(Config{URL: srv.URL, HTTPClient: &http.Client{Transport: tr}, IdleTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			events, errc := s.Start(ctx, 0)
			recv(t, events)
			recv(t, events)
			cancel()
			if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v", err)
			}
			for range events {
			}
		}
	}()
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d > %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
