package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
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
	"notify/pkg/config"
	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
	"notify/read-api/internal/drain"
	"notify/read-api/internal/hangup"
	"notify/read-api/internal/hub"
	"notify/read-api/internal/stream"
)

const testSecret = "httpapi-test-secret-httpapi-test-secret-01"

// With two setups allowed and both slots held, a third stream waits for
// a slot until the join timeout and is then refused, 503 with Retry-After,
// counted as busy; once a slot is free a stream is set up and, while it
// streams, holds no slot.
func TestSetupsWaitForASlotWithinTheJoinTimeout(t *testing.T) {
	r := redistest.Start(t)
	h, base := startHandler(t, r, Limits{MaxSetups: 2})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	var held []func()
	for range 2 {
		done, err := h.setups.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, done)
	}
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
	if took < JoinTimeout || took > JoinTimeout+2*time.Second {
		t.Errorf("third stream refused after %s; want it to wait for a slot for the join timeout (%s), no longer", took, JoinTimeout)
	}
	if n := testutil.ToFloat64(h.metrics.refused[refusedBusy]); n != 1 {
		t.Errorf("refused busy counted %v, want 1", n)
	}

	// A stream waiting for a slot gets the first one given back.
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Do(streamRequest(t, base, "d"))
		if err != nil {
			t.Errorf("stream d: %v", err)
		}
		got <- resp
	}()
	held[0]()
	resp = <-got
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a stream once a slot is free: %d, want 200", resp.StatusCode)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	// The stream stays open: its slot goes back once its replay is written.
	testwait.Until(t, 5*time.Second, "only the test's own slot held", func() bool { return h.setups.inSetup() == 1 })
	held[1]()
}

// A burst of streams far beyond the bound is set up a few at a time: every
// stream is served, none refused, and no slot stays held.
func TestBurstBeyondTheBoundIsServed(t *testing.T) {
	r := redistest.Start(t)
	h, base := startHandler(t, r, Limits{MaxSetups: 2})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	const n = 40
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	codes := make(chan int, n)
	for i := range n {
		go func() {
			resp, err := client.Do(streamRequest(t, base, fmt.Sprintf("burst-%d", i)).WithContext(ctx))
			if err != nil {
				codes <- 0
				return
			}
			defer resp.Body.Close()
			codes <- resp.StatusCode
			if resp.StatusCode == http.StatusOK {
				_, _ = io.ReadFull(resp.Body, make([]byte, 8)) // the retry: field, then hold the stream until cancel
				<-ctx.Done()
			}
		}()
	}
	for range n {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a stream of the burst: %d, want 200", code)
		}
	}
	if n := testutil.ToFloat64(h.metrics.refused[refusedBusy]); n != 0 {
		t.Errorf("refused busy counted %v, want 0", n)
	}
	testwait.Until(t, 5*time.Second, "every setup slot given back", func() bool { return h.setups.inSetup() == 0 })
}

// With Redis stalled, streams waiting for a slot or for Redis are answered
// 503 within the join timeout, and every slot comes back.
func TestSetupsDuringARedisStallGiveTheirSlotsBack(t *testing.T) {
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
	type answer struct {
		code int
		took time.Duration
	}
	answers := make(chan answer, 4)
	for i := range 4 {
		go func() {
			t0 := time.Now()
			resp, err := client.Do(streamRequest(t, base, fmt.Sprintf("stall-%d", i)))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				answers <- answer{}
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, time.Since(t0)}
		}()
	}
	for range 4 {
		a := <-answers
		if a.code != http.StatusServiceUnavailable || a.took > JoinTimeout+2*time.Second {
			t.Errorf("a stream during the stall: %d after %s; want 503 within %s", a.code, a.took, JoinTimeout+2*time.Second)
		}
	}
	r.Signal(syscall.SIGCONT)
	stopped = false
	testwait.Until(t, 5*time.Second, "every setup slot given back", func() bool { return h.setups.inSetup() == 0 })
}

// startHandler serves the stream handler over real HTTP, on Redis r.
func startHandler(t *testing.T, r *redistest.Server, limits Limits) (*Handler, string) {
	t.Helper()
	log := zap.NewNop()
	keys := redisbus.Keys{Prefix: "httpapitest:"}
	client, _, err := redisbus.NewClient(config.Redis{URL: r.URL()}) // the services' timeouts
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sub := redisbus.NewSubscriber(client, keys, false, log)
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
		Verifier: verifier, Hub: hb, History: redisbus.NewHistory(client, keys), Limits: limits,
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
