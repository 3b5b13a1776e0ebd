// Package publisher is a Go client for write-api: publish one notification
// or a batch, with an idempotency key on every call so that retries (on
// 429, 503, gateway errors and network errors, with exponential backoff and
// jitter, honouring Retry-After) never publish twice.
package publisher

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// TokenSource returns the bearer token for a request. It is called once per
// attempt, so a source that refreshes tokens hands out fresh ones.
type TokenSource func(ctx context.Context) (string, error)

// Client publishes to one write-api. It is safe for concurrent use.
type Client struct {
	base   string
	http   *http.Client
	token  TokenSource
	retry  Retry
	newKey func() string
}

// Retry shapes the retries of one call.
type Retry struct {
	MaxAttempts int           // attempts in all, the first included; 1 disables retries
	Initial     time.Duration // first backoff interval
	Max         time.Duration // cap of one backoff interval, and of an honoured Retry-After
	MaxElapsed  time.Duration // stop retrying once a call has taken this long
}

// Defaults.
const (
	DefaultMaxAttempts = 5
	DefaultInitial     = 200 * time.Millisecond
	DefaultMax         = 10 * time.Second
	DefaultMaxElapsed  = 30 * time.Second
	DefaultTimeout     = 10 * time.Second // one attempt, with the default HTTP client
)

// Option configures a Client.
type Option func(*Client)

// WithToken sends a fixed bearer token.
func WithToken(token string) Option {
	return func(c *Client) {
		c.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenSource takes the bearer token from src on every attempt.
func WithTokenSource(src TokenSource) Option { return func(c *Client) { c.token = src } }

// WithHTTPClient uses hc instead of a client with DefaultTimeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetry replaces the retry policy; zero fields keep their defaults.
func WithRetry(r Retry) Option {
	return func(c *Client) {
		if r.MaxAttempts > 0 {
			c.retry.MaxAttempts = r.MaxAttempts
		}
		if r.Initial > 0 {
			c.retry.Initial = r.Initial
		}
		if r.Max > 0 {
			c.retry.Max = r.Max
		}
		if r.MaxElapsed > 0 {
			c.retry.MaxElapsed = r.MaxElapsed
		}
	}
}

// ErrNoToken is returned when the client has no token source.
var ErrNoToken = errors.New("publisher: no token: use WithToken or WithTokenSource")

// New returns a client for the write-api at baseURL (e.g.
// "http://write-api:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:   strings.TrimRight(baseURL, "/"),
		http:   &http.Client{Timeout: DefaultTimeout},
		retry:  Retry{MaxAttempts: DefaultMaxAttempts, Initial: DefaultInitial, Max: DefaultMax, MaxElapsed: DefaultMaxElapsed},
		newKey: newKey,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}
