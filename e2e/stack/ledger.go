package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"notify/pkg/sseclient"
)

// Ledger records what was published per topic, in publish order, so that
// what clients receive can be compared with it exactly.
type Ledger struct {
	mu    sync.Mutex
	byTop map[string][]string
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{byTop: map[string][]string{}} }

// Add records that id was accepted for topic.
func (l *Ledger) Add(topic, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byTop[topic] = append(l.byTop[topic], id)
}

// Topic returns the ids published to topic.
func (l *Ledger) Topic(topic string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byTop[topic])
}

// Client is a reconnecting subscriber (the WHATWG client in pkg/sseclient)
// that records every notification it receives, per topic.
type Client struct {
	Topics []string
	stream *sseclient.Stream

	mu     sync.Mutex
	got    map[string][]string
	resets []string
	closed chan error
	opened atomic.Bool
}

// Opened reports whether a stream has been established (headers received:
// from then on nothing published is missed).
func (c *Client) Opened() bool { return c.opened.Load() }

// NewClient subscribes to topics through pods, picking the next pod on
// every (re)connection attempt, so a dead or draining pod is skipped.
func NewClient(ctx context.Context, pods func() []string, token string, topics []string, offset int) (*Client, error) {
	c := &Client{Topics: topics, got: map[string][]string{}, closed: make(chan error, 1)}
	var attempt atomic.Int64
	attempt.Store(int64(offset))
	q := "?access_token=" + token
	for _, t := range topics {
		q += "&topic=" + t
	}
	s, err := sseclient.NewStream(sseclient.Config{
		NewRequest: func(ctx context.Context, _ string) (*http.Request, error) {
			urls := pods()
			u := urls[int(attempt.Add(1))%len(urls)]
			return http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/stream"+q, nil)
		},
		ReconnectDelay: 200 * time.Millisecond,
		MaxDelay:       2 * time.Second,
		Jitter:         0.5,
		RetryResponse:  sseclient.RetryUnavailable,
		OnOpen:         func(*http.Response) { c.opened.Store(true) },
	})
	if err != nil {
		return nil, err
	}
	c.stream = s
	go func() { c.closed <- s.Run(ctx, c.record) }()
	return c, nil
}

func (c *Client) record(ev sseclient.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ev.Type == "stream.reset":
		var r struct{ Topics []string }
		_ = json.Unmarshal([]byte(ev.Data), &r)
		c.resets = append(c.resets, r.Topics...)
	case strings.HasPrefix(ev.Type, "stream."):
	default:
		var e Envelope
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			return fmt.Errorf("bad event data %q: %w", ev.Data, err)
		}
		c.got[e.Topic] = append(c.got[e.Topic], e.ID)
	}
	return nil
}

// Got returns the ids received on topic.
func (c *Client) Got(topic string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[topic])
}

// Resets returns the topics named by stream.reset events so far.
func (c *Client) Resets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.resets)
}

// Reconnects is how many times the client connected again.
func (c *Client) Reconnects() int64 { return c.stream.Reconnects() }

// Compare reports how got differs from want: nil when they are equal
// (every id exactly once, in order).
func Compare(want, got []string) error {
	if slices.Equal(want, got) {
		return nil
	}
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	missing, dups := 0, 0
	for _, id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	first := 0
	for first < min(len(want), len(got)) && want[first] == got[first] {
		first++
	}
	return fmt.Errorf("want %d ids, got %d: %d missing, %d duplicated, first difference at %d", len(want), len(got), missing, dups, first)
}

// WaitAll waits until every client has exactly what the ledger holds for
// each of its topics, or reports the first difference after within.
func WaitAll(l *Ledger, clients []*Client, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var first error
		for i, c := range clients {
			for _, t := range c.Topics {
				if err := Compare(l.Topic(t), c.Got(t)); err != nil && first == nil {
					first = fmt.Errorf("client %d topic %s: %w", i, t, err)
				}
			}
		}
		if first == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return first
		}
		time.Sleep(100 * time.Millisecond)
	}
}
