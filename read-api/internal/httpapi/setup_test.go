package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/read-api/internal/drain"
	"notify/read-api/internal/hangup"
	"notify/read-api/internal/hub"
	"notify/read-api/internal/stream"
)

const testSecret = "httpapi-test-secret-httpapi-test-secret-01"

// With two setups allowed and Redis stalled, two streams wait in their
// setup and a third is refused at once, 503 with Retry-After, and counted.
// Once Redis answers again every slot is given back, and a stream that
// streams holds none.
func TestSetupsBeyondTheBoundAreRefusedAtOnce(t *testing.T) {
	r := redistest.Start(t)
	h, base := startHandler(t, r, Limits{MaxSetups: 2})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	r.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			r.Signal(syscall.SIGCONT)
		}
	}()
	waiting := make(chan *http.Response, 2)
	for _, sub := range []string{"a", "b"} {
		go func() {
			resp, err := client.Do(streamRequest(t, base, sub))
			if err != nil {
				t.Errorf("stream %s: %v", sub, err)
			}
			waiting <- resp
		}()
	}
	waitFor(t, 5*time.Second, "two streams in their setup", func() bool { return h.setups.inSetup() == 2 })

	t0 := time.Now()
	resp, err := client.Do(streamRequest(t, base, "c"))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	var p struct{ Detail string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || !strings.Contains(p.Detail, "busy") {
		t.Errorf("third stream: %d, Retry-After %q, %s, detail %q; want 503 problem+json, Retry-After, busy",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), p.Detail)
	}
	if took >= JoinTimeout {
		t.Errorf("third stream refused after %s: it waited for Redis (join timeout %s)", took, JoinTimeout)
	}
	if n := testutil.ToFloat64(h.metrics.refused[refusedBusy]); n != 1 {
		t.Errorf("refused busy counted %v, want 1", n)
	}

	r.Signal(syscall.SIGCONT)
	stopped = false
	for range 2 {
		if resp := <-waiting; resp != nil {
			resp.Body.Close() // streaming or 503 Redis unavailable, depending on how long the stall was
		}
	}
	waitFor(t, 5*time.Second, "every setup slot given back", func() bool { return h.setups.inSetup() == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err = client.Do(streamRequest(t, base, "d").WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a stream after the stall: %d, want 200", resp.StatusCode)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	// The stream stays open: its slot goes back once its replay is written.
	waitFor(t, 5*time.Second, "no setup slot held by a stream that streams", func() bool { return h.setups.inSetup() == 0 })
}

// startHandler serves the stream handler over real HTTP, on Redis r.
func startHandler(t *testing.T, r *redistest.Server, limits Limits) (*Handler, string) {
	t.Helper()
	log := zap.NewNop()
	keys := redisbus.Keys{Prefix: "httpapitest:"}
	sub := redisbus.NewSubscriber(r.Client(), keys, false, log)
	hb := hub.New(sub, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sub.Run(ctx, hb); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	verifier, err := auth.NewVerifier(auth.Config{HS256Secret: testSecret, Audience: "notifications"})
	if err != nil {
		t.Fatal(err)
	}
	limits.MaxTopics, limits.MaxStreamsPerSubject, limits.MaxConnectionAge = 8, 20, time.Hour
	limits.Stream = stream.DefaultLimits(time.Hour)
	h := New(Deps{
		Verifier: verifier, Hub: hb, History: redisbus.NewHistory(r.Client(), keys), Limits: limits,
		Drain: drain.New(), Hangups: hangup.Reads{}, Metrics: NewMetrics(prometheus.NewRegistry(), hb, sub), Log: log,
	})
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	h.Mount(engine)
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/v1/stream"
}

func streamRequest(t *testing.T, base, subject string) *http.Request {
	t.Helper()
	topic := "seller:" + subject
	tok, err := devtoken.Subscriber(testSecret, "notifications", subject, []string{topic}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, base+"?topic="+topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
