package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/devtoken"
	"notify/pkg/testwait"
)

// Stream requests the API refuses, each with its problem+json status.
func TestStreamRefusals(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	r := s.StartRead(map[string]string{"MAX_TOPICS_PER_CONNECTION": "3", "MAX_CONNECTIONS_PER_SUBJECT": "2"})
	many := make([]string, 4)
	for i := range many {
		many[i] = fmt.Sprintf("seller:%d", i)
	}
	tok := s.SubscriberToken("u", many...)
	expired, _ := devtoken.Subscriber(stack.Secret, "notifications", "u", many, -time.Minute)
	wrongAud, _ := devtoken.Subscriber(stack.Secret, "other", "u", many, time.Hour)
	tests := []struct {
		name, query string
		header      http.Header
		want        int
	}{
		{"no token", "", nil, 401},
		{"expired token", "", bearer(expired), 401},
		{"wrong audience", "", bearer(wrongAud), 401},
		{"topic not granted", "?topic=seller:99", bearer(tok), 403},
		{"invalid topic", "?topic=Seller:1", bearer(tok), 400},
		{"too many topics", "?topic=seller:0&topic=seller:1&topic=seller:2&topic=seller:3", bearer(tok), 400},
		{"claim larger than the limit", "", bearer(tok), 400},
		{"token in query is accepted", "?topic=seller:1&access_token=" + tok, nil, 200},
	}
	for _, tc := range tests {
		c, err := stack.Open(t.Context(), r.URL+"/v1/stream"+tc.query, tc.header)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, c.Resp.StatusCode, tc.want)
		}
		if tc.want != 200 && c.Resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content-type %q", tc.name, c.Resp.Header.Get("Content-Type"))
		}
		c.Close()
	}

	// Per-subject limit: the third concurrent stream of one sub gets 429.
	a := open(t, r, tok, "?topic=seller:1")
	b := open(t, r, tok, "?topic=seller:2")
	c, err := stack.Open(t.Context(), r.URL+"/v1/stream?topic=seller:3", bearer(tok))
	if err != nil || c.Resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream: %v status %d, want 429", err, c.Resp.StatusCode)
	}
	c.Close()
	a.Close()
	b.Close()
	testwait.Until(t, 3*time.Second, "a slot frees when a stream ends", func() bool {
		c, err := stack.Open(t.Context(), r.URL+"/v1/stream?topic=seller:3", bearer(tok))
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Resp.StatusCode == http.StatusOK
	})
}

// Idle streams get heartbeat comments; at the token's exp the stream says
// stream.expired and ends.
func TestHeartbeatAndExpiry(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	r := s.StartRead(map[string]string{"HEARTBEAT_INTERVAL": "200ms"})
	tok, _ := devtoken.Subscriber(stack.Secret, "notifications", "u", []string{"seller:1"}, 2*time.Second)
	c := open(t, r, tok, "")
	comments := 0
	var expiredEv string
	deadline := time.After(6 * time.Second)
loop:
	for {
		select {
		case ev, ok := <-c.Events:
			if !ok {
				break loop
			}
			if ev.Comment {
				comments++
			} else if ev.Type == "stream.expired" {
				expiredEv = ev.Data
			}
		case <-deadline:
			t.Fatal("stream did not end after the token expired")
		}
	}
	if comments < 3 {
		t.Errorf("got %d heartbeats in ~2s at 200ms, want at least 3", comments)
	}
	if !strings.Contains(expiredEv, "expired") {
		t.Errorf("no stream.expired event before the end (got %q)", expiredEv)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(expiredEv), &v); err != nil {
		t.Errorf("stream.expired data is not JSON: %v", err)
	}
}
