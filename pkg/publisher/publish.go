package publisher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Notification is one notification to publish. Data is any value
// encoding/json can marshal (a json.RawMessage is sent as is). Key, when
// set, makes the notification each topic's current state for that key
// (read with a snapshot or the state API); with a nil Data it removes the
// key from the state.
type Notification struct {
	Topics []string `json:"topics"`
	Type   string   `json:"type"`
	Key    string   `json:"key,omitempty"`
	Data   any      `json:"data"`
}

// Result is write-api's answer to a single publish.
type Result struct {
	ID       string   // the notification id
	Topics   []string // the topics, deduplicated by the server
	Replayed bool     // the idempotency key had been used: nothing new was published
}

// CallOption configures one call.
type CallOption func(*call)

type call struct{ key string }

// IdempotencyKey sets the call's Idempotency-Key. Without it every call
// gets a fresh random key, which makes the call's own retries safe; pass
// your own (e.g. derived from the event that caused the notification) to
// make retries across process restarts safe too.
func IdempotencyKey(key string) CallOption { return func(c *call) { c.key = key } }

// Publish publishes n and returns its id.
func (c *Client) Publish(ctx context.Context, n Notification, opts ...CallOption) (Result, error) {
	var out struct {
		ID     string   `json:"id"`
		Topics []string `json:"topics"`
	}
	replayed, err := c.post(ctx, "/v1/notifications", n, &out, opts)
	if err != nil {
		return Result{}, err
	}
	return Result{ID: out.ID, Topics: out.Topics, Replayed: replayed}, nil
}

// PublishBatch publishes ns as one batch, all or nothing, and returns their
// ids in order. When the server rejects one item, the *Error's Index names it.
func (c *Client) PublishBatch(ctx context.Context, ns []Notification, opts ...CallOption) ([]string, error) {
	var out struct {
		IDs []string `json:"ids"`
	}
	body := struct {
		Notifications []Notification `json:"notifications"`
	}{ns}
	if _, err := c.post(ctx, "/v1/notifications/batch", body, &out, opts); err != nil {
		return nil, err
	}
	return out.IDs, nil
}

// post sends body with retries and decodes a 202 into out. It reports
// whether the server replayed an earlier answer for the idempotency key.
func (c *Client) post(ctx context.Context, path string, body, out any, opts []CallOption) (bool, error) {
	var cl call
	for _, o := range opts {
		o(&cl)
	}
	if cl.key == "" {
		cl.key = c.newKey()
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return false, fmt.Errorf("publisher: encode: %w", err)
	}
	var replayed bool
	err = c.retry.do(ctx, func() error {
		var err error
		replayed, err = c.attempt(ctx, path, cl.key, payload, out)
		return err
	})
	return replayed, err
}

// attempt is one request.
func (c *Client) attempt(ctx context.Context, path, key string, payload []byte, out any) (bool, error) {
	if c.token == nil {
		return false, ErrNoToken
	}
	tok, err := c.token(ctx)
	if err != nil {
		return false, fmt.Errorf("publisher: token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(payload))
	if err != nil {
		return false, fmt.Errorf("publisher: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, &netError{err: fmt.Errorf("publisher: POST %s: %w", path, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, &netError{err: fmt.Errorf("publisher: POST %s: read response: %w", path, err)}
	}
	if resp.StatusCode != http.StatusAccepted {
		return false, newError(resp, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("publisher: POST %s: decode response: %w", path, err)
	}
	return resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// newKey returns a random 128-bit key in hex.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("%x", b)
}
