package sseclient

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrFailed is wrapped by every error that makes a Stream give up
	// the connection as the spec's "fail the connection" (see ResponseError).
	ErrFailed = errors.New("sseclient: connection failed")
	// ErrIdle is passed to Config.OnRetry when a connection was dropped
	// because nothing arrived within Config.IdleTimeout.
	ErrIdle = errors.New("sseclient: stream idle")
	// ErrRunning is returned by Run when the Stream is already running.
	ErrRunning = errors.New("sseclient: stream already running")
)

const maxProblemBytes = 4 << 10

// ResponseError describes a response that is not a 200 text/event-stream
// (HTTP 204 included, which servers use to say "stop reconnecting").
// It wraps ErrFailed.
type ResponseError struct {
	StatusCode  int
	ContentType string
	// RetryAfter is the parsed Retry-After header, 0 when absent.
	RetryAfter time.Duration
	// Body is the start of the response body (for problem+json checks).
	Body []byte
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("sseclient: connection failed: status %d, content type %q", e.StatusCode, e.ContentType)
}

// Unwrap lets errors.Is(err, ErrFailed) match.
func (e *ResponseError) Unwrap() error { return ErrFailed }

func newResponseError(resp *http.Response) *ResponseError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes))
	return &ResponseError{
		StatusCode:  resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		RetryAfter:  parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:        body,
	}
}

// RetryUnavailable is a Config.RetryResponse for the statuses a server uses
// to say "later": 429 Too Many Requests and 503 Service Unavailable.
func RetryUnavailable(resp *http.Response) bool {
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isEventStream reports whether a Content-Type is text/event-stream,
// ignoring parameters and case.
func isEventStream(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}
