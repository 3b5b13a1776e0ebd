package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"notify/pkg/devtoken"
	"notify/pkg/notification"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// The operator's series move with what the pod does: streams opened and
// closed by reason, resumes and resets, history reads, the publish →
// fan-out lag, and the pub/sub and readiness gauges through a Redis
// outage.
func TestMetricsMove(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	addr := a.Addr()
	m := scrape(t, addr)
	for _, name := range []string{"notify_ready", "notify_read_pubsub_healthy"} {
		if m[name] != 1 {
			t.Fatalf("%s = %v at start, want 1", name, m[name])
		}
	}

	tok, err := devtoken.Subscriber(secret, "notifications", "metrics", []string{"seller:1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	live, br := openStream(t, addr, tok, "")
	pub := redisbus.NewPublisher(r.Client(), redisbus.Keys{Prefix: "notify:"}, redisbus.PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour})
	publish(t, pub, "seller:1", time.Now())
	id := readEventID(t, br)

	exact, _ := openStream(t, addr, tok, id)
	reset, _ := openStream(t, addr, tok, "garbage!")
	testwait.Until(t, 5*time.Second, "the lag observed once", func() bool {
		return scrape(t, addr)["notify_read_delivery_lag_seconds_count"] == 1
	})
	m = scrape(t, addr)
	for series, want := range map[string]float64{
		"notify_read_streams_opened_total":                                3,
		"notify_read_connections":                                         3,
		`notify_read_resumes_total{outcome="exact"}`:                      1,
		`notify_read_resumes_total{outcome="reset"}`:                      1,
		`notify_read_resets_total{reason="unreadable_cursor"}`:            1,
		`notify_read_history_reads_total{kind="positions",outcome="ok"}`:  3,
		`notify_read_delivery_lag_seconds_bucket{le="+Inf"}`:              1,
		`notify_read_streams_closed_total{reason="client_gone"}`:          0,
		`notify_read_pubsub_probe_failures_total{result="timeout"}`:       0,
		`notify_read_history_reads_total{kind="range",outcome="error"}`:   0,
		`notify_read_deliveries_total`:                                    1,
		`notify_read_pubsub_resubscribed_total`:                           0,
		`notify_read_pubsub_probe_failures_total{result="publish_error"}`: 0,
		`notify_read_resets_total{reason="history_trimmed"}`:              0,
		`notify_read_resumes_total{outcome="deferred"}`:                   0,
		`notify_read_streams_closed_total{reason="slow"}`:                 0,
		`notify_read_delivery_lag_seconds_bucket{le="10"}`:                1, // published just now
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	for _, c := range []net.Conn{exact, reset} {
		_ = c.Close()
	}
	testwait.Until(t, 5*time.Second, "two streams closed as client_gone", func() bool {
		return scrape(t, addr)[`notify_read_streams_closed_total{reason="client_gone"}`] == 2
	})

	// Redis goes away with one stream open: the pod says so, and after
	// Redis is back it subscribes the stream's topics again.
	r.Kill()
	testwait.Until(t, 10*time.Second, "read errors and unready while Redis is down", func() bool {
		m := scrape(t, addr)
		return m["notify_read_pubsub_read_errors_total"] >= 1 && m["notify_ready"] == 0 && m["notify_read_pubsub_healthy"] == 0
	})
	r.Restart()
	testwait.Until(t, 15*time.Second, "topics resubscribed and ready again", func() bool {
		m := scrape(t, addr)
		return m["notify_read_pubsub_resubscribed_total"] >= 2 && m["notify_ready"] == 1 // seller:1 and broadcast
	})
	_ = live.Close()
}

// The lag is measured from the envelope's time: a message published a
// minute ago lands past the 30 s bucket.
func TestLagFromEnvelopeTime(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	tok, err := devtoken.Subscriber(secret, "notifications", "lag", []string{"seller:2"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, br := openStream(t, a.Addr(), tok, "")
	pub := redisbus.NewPublisher(r.Client(), redisbus.Keys{Prefix: "notify:"}, redisbus.PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour})
	publish(t, pub, "seller:2", time.Now().Add(-time.Minute))
	readEventID(t, br)
	testwait.Until(t, 5*time.Second, "the lag observed", func() bool {
		return scrape(t, a.Addr())["notify_read_delivery_lag_seconds_count"] == 1
	})
	m := scrape(t, a.Addr())
	if got := m[`notify_read_delivery_lag_seconds_bucket{le="30"}`]; got != 0 {
		t.Errorf("a minute-old message counted in the 30 s bucket")
	}
	if got := m["notify_read_delivery_lag_seconds_sum"]; got < 60 || got > 90 {
		t.Errorf("lag sum = %v s, want about 60", got)
	}
}

func publish(t *testing.T, pub *redisbus.Publisher, topic string, at time.Time) {
	t.Helper()
	id, err := notification.NewID()
	if err != nil {
		t.Fatal(err)
	}
	env := notification.Envelope{ID: id, Topic: topic, Type: "t.x", Time: at.UTC(), Data: []byte(`{}`)}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(t.Context(), []notification.Event{{Topic: topic, Body: notification.EncodeBody(env.Type, b), Link: notification.LinkOf(id)}}); err != nil {
		t.Fatal(err)
	}
}

// openStream opens a stream over a plain connection, resuming from
// lastEventID when set, and reads its head.
func openStream(t *testing.T, addr, tok, lastEventID string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	resume := ""
	if lastEventID != "" {
		resume = "Last-Event-ID: " + lastEventID + "\r\n"
	}
	fmt.Fprintf(c, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s\r\n", addr, tok, resume)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return c, br
}

// readEventID reads frames until an event with an id arrives.
func readEventID(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for range 100 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
			return id
		}
	}
	t.Fatal("no event with an id")
	return ""
}

// scrape reads every sample of /metrics, keyed by name and labels as
// written there.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
