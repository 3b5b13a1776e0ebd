// Package problem turns errors into RFC 9457 problem+json responses. It is
// the one table from error code to HTTP status; internal errors are logged
// by the caller and shown to clients only as a generic 500.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code classifies an error a client can act on.
type Code string

// Codes, one per kind of problem a client sees.
const (
	Invalid             Code = "invalid-request"
	Unauthenticated     Code = "unauthenticated"
	Forbidden           Code = "forbidden"
	TooLarge            Code = "too-large"
	UnsupportedMedia    Code = "unsupported-media-type"
	IdempotencyMismatch Code = "idempotency-key-reused"
	Conflict            Code = "conflict"
	TooManyRequests     Code = "too-many-requests"
	Unavailable         Code = "unavailable"
	NotFound            Code = "not-found"
	Gone                Code = "gone"
	Internal            Code = "internal"
	// Codes of the answers net/http decides before any handler runs; the
	// servers send them as problems too (see httpserver).
	Timeout             Code = "request-timeout"
	HeadersTooLarge     Code = "headers-too-large"
	ExpectationFailed   Code = "expectation-failed"
	NotImplemented      Code = "not-implemented"
	VersionNotSupported Code = "http-version-not-supported"
)

var table = map[Code]struct {
	status int
	title  string
}{
	Invalid:             {http.StatusBadRequest, "Invalid request"},
	Unauthenticated:     {http.StatusUnauthorized, "Missing or invalid token"},
	Forbidden:           {http.StatusForbidden, "Not allowed by the token"},
	TooLarge:            {http.StatusRequestEntityTooLarge, "Content too large"},
	UnsupportedMedia:    {http.StatusUnsupportedMediaType, "Content-Type must be application/json"},
	IdempotencyMismatch: {http.StatusUnprocessableEntity, "Idempotency key reused with a different request"},
	Conflict:            {http.StatusConflict, "Conflicting request in progress"},
	TooManyRequests:     {http.StatusTooManyRequests, "Too many requests"},
	Unavailable:         {http.StatusServiceUnavailable, "Service unavailable"},
	NotFound:            {http.StatusNotFound, "Not found"},
	Gone:                {http.StatusGone, "History no longer available"},
	Internal:            {http.StatusInternalServerError, "Internal error"},
	Timeout:             {http.StatusRequestTimeout, "Request not received in time"},
	HeadersTooLarge:     {http.StatusRequestHeaderFieldsTooLarge, "Request headers too large"},
	ExpectationFailed:   {http.StatusExpectationFailed, "Expectation failed"},
	NotImplemented:      {http.StatusNotImplemented, "Not implemented"},
	VersionNotSupported: {http.StatusHTTPVersionNotSupported, "HTTP version not supported"},
}

// ForStatus returns the code answered with status, if there is one.
func ForStatus(status int) (Code, bool) {
	for code, e := range table {
		if e.status == status {
			return code, true
		}
	}
	return "", false
}

// Error is an error with a client-facing code and detail.
type Error struct {
	Code       Code
	Detail     string
	Index      *int          // batch item the problem is about
	RetryAfter time.Duration // sent as Retry-After when set
	Err        error         // cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of the code.
func (e *Error) Status() int { return table[e.Code].status }

// New returns an Error with a formatted detail.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error whose detail is the client-safe text and whose
// cause is kept for logs.
func Wrap(code Code, err error, detail string) *Error {
	return &Error{Code: code, Detail: detail, Err: err}
}

// Body is the problem+json document.
type Body struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Index  *int   `json:"index,omitempty"`
}

// Write sends err as problem+json and returns the status sent. Errors that
// are not *Error become a 500 with no detail: their text is internal.
func Write(w http.ResponseWriter, err error) int {
	status, header, body := Response(err)
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// Response is what Write sends for err: the status, the headers and the
// problem+json body.
func Response(err error) (status int, header http.Header, body []byte) {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Code: Internal}
	}
	entry, ok := table[pe.Code]
	if !ok {
		entry = table[Internal]
	}
	header = http.Header{
		"Content-Type":  {"application/problem+json"},
		"Cache-Control": {"no-store"},
	}
	if pe.RetryAfter > 0 {
		header.Set("Retry-After", strconv.Itoa(int((pe.RetryAfter+time.Second-1)/time.Second)))
	}
	body, _ = json.Marshal(Body{
		Type: "urn:notify:problem:" + string(pe.Code), Title: entry.title, Status: entry.status,
		Detail: pe.Detail, Index: pe.Index,
	})
	return entry.status, header, append(body, '\n')
}
