package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"notify/pkg/sseclient"
)

// Envelope is the data of a notification event.
type Envelope struct {
	ID    string          `json:"id"`
	Topic string          `json:"topic"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// Conn is one open stream, read into a channel by its own goroutine.
type Conn struct {
	Resp   *http.Response
	Events chan sseclient.Event
	cancel context.CancelFunc
	done   chan struct{}
}

// Open connects to url (a full /v1/stream URL) with header and returns once
// the response headers arrived: from then on the stream is live.
func Open(ctx context.Context, url string, header http.Header) (*Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &Conn{Resp: resp, Events: make(chan sseclient.Event, 4096), cancel: cancel, done: make(chan struct{})}
	if resp.StatusCode != http.StatusOK {
		return c, nil
	}
	go func() {
		defer close(c.done)
		defer close(c.Events)
		p := sseclient.NewParser(resp.Body, &sseclient.ParseOptions{Comments: true})
		for {
			ev, err := p.Next()
			if err != nil {
				return
			}
			select {
			case c.Events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return c, nil
}

// Close ends the stream and waits for its reader.
func (c *Conn) Close() {
	c.cancel()
	c.Resp.Body.Close()
	if c.Resp.StatusCode == http.StatusOK {
		<-c.done
	}
}

// Next returns the next non-comment event or an error after d.
func (c *Conn) Next(d time.Duration) (sseclient.Event, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events:
			if !ok {
				return ev, fmt.Errorf("stream ended")
			}
			if ev.Comment {
				continue
			}
			return ev, nil
		case <-timer.C:
			return sseclient.Event{}, fmt.Errorf("no event within %s", d)
		}
	}
}

// Quiet reports an error if a non-comment event arrives within d.
func (c *Conn) Quiet(d time.Duration) error {
	ev, err := c.Next(d)
	if err == nil {
		return fmt.Errorf("unexpected event %s: %s", ev.Type, ev.Data)
	}
	return nil
}

// DecodeEnvelope parses a notification event's data.
func DecodeEnvelope(ev sseclient.Event) (Envelope, error) {
	var e Envelope
	err := json.Unmarshal([]byte(ev.Data), &e)
	return e, err
}
