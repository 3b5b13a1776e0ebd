package app

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/redistest"
)

// Every publish request is counted by outcome, and each script round trip
// is timed.
func TestMetricsCountPublishes(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	base := "http://" + a.Addr()
	tok, _ := devtoken.Publisher(secret, "notifications", "svc", auth.ScopePublish, time.Hour)
	sub, _ := devtoken.Subscriber(secret, "notifications", "u", []string{"seller:1"}, time.Hour)
	send := func(tok, body, key string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/notifications", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const good = `{"topics":["seller:1"],"type":"t","data":1}`
	for _, c := range []struct {
		tok, body, key string
		status         int
	}{
		{tok, good, "", 202},
		{tok, good, "k1", 202},
		{tok, good, "k1", 202}, // replayed
		{tok, `{"topics":[]}`, "", 400},
		{sub, good, "", 403},
		{"nope", good, "", 401},
	} {
		if got := send(c.tok, c.body, c.key); got != c.status {
			t.Fatalf("%s: status %d, want %d", c.body, got, c.status)
		}
	}
	r.Kill()
	if got := send(tok, good, ""); got != http.StatusServiceUnavailable {
		t.Fatalf("Redis down: status %d", got)
	}
	m := scrape(t, base)
	for series, want := range map[string]float64{
		`notify_write_publishes_total{outcome="accepted"}`:     2,
		`notify_write_publishes_total{outcome="replayed"}`:     1,
		`notify_write_publishes_total{outcome="invalid"}`:      1,
		`notify_write_publishes_total{outcome="denied"}`:       2,
		`notify_write_publishes_total{outcome="unavailable"}`:  1,
		`notify_write_publishes_total{outcome="rate_limited"}`: 0,
		`notify_ready`: 0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if n := m["notify_write_redis_script_seconds_count"]; n < 2 {
		t.Errorf("script round trips timed: %v, want at least 2", n)
	}
}

// scrape reads every sample of /metrics, keyed by name and labels.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
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
