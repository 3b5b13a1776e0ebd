package publisher

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a response other than 202: the RFC 9457 problem the server sent
// (or what could be made of a body that was not one).
type Error struct {
	Status     int           // HTTP status
	Type       string        // problem type URI, e.g. "urn:notify:problem:invalid-request"
	Title      string        // short summary of the type
	Detail     string        // what was wrong with this request
	Index      *int          // the batch item at fault, when the server named one
	RetryAfter time.Duration // the Retry-After header, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publisher: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Index != nil {
		fmt.Fprintf(&b, " (item %d)", *e.Index)
	}
	return b.String()
}

// Temporary reports whether a retry may succeed: 429, 503, 409 (the same
// key still in progress) and gateway errors. A 503 or a network error
// leaves the outcome unknown (the notification may have been published);
// retrying is safe because each call keeps one idempotency key over all
// its attempts, and the server publishes a key's notification only once.
func (e *Error) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusConflict,
		http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func newError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = max(0, time.Until(t))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" && mt != "application/json" {
		return e
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Index  *int   `json:"index"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Detail, e.Index = p.Type, p.Detail, p.Index
		if p.Title != "" {
			e.Title = p.Title
		}
	}
	return e
}

// netError marks a transport failure: the request may or may not have
// reached the server, so it is retried under the same idempotency key.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// settling reports whether err is a 409: the server is still settling an
// earlier attempt under the same idempotency key.
func settling(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Status == http.StatusConflict
}

// retryable reports whether err is worth another attempt, and how long the
// server asked to wait (0: use the backoff).
func retryable(err error) (bool, time.Duration) {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Temporary(), pe.RetryAfter
	}
	var ne *netError
	return errors.As(err, &ne), 0
}
