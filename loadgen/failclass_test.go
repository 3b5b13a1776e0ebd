package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
)

// Every way a connect attempt fails has its class; a 503 keeps the first
// words of its detail unless the pod drains.
func TestFailureClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{&statusError{code: 503, detail: "this pod is draining; reconnect"}, "503 draining"},
		{&statusError{code: 503, detail: "Redis is unavailable; retry later"}, "503 Redis is unavailable"},
		{&statusError{code: 503, detail: "this pod is busy starting other streams; reconnect"}, "503 this pod is busy"},
		{&statusError{code: 503}, "503"},
		{&statusError{code: 429, detail: "too many open streams for this subject"}, "429"},
		{&statusError{code: 401, detail: "token expired"}, "http 401"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "timeout"},
		{fmt.Errorf("read head: %w", os.ErrDeadlineExceeded), "timeout"},
		{io.EOF, "reset/EOF before headers"},
		{io.ErrUnexpectedEOF, "reset/EOF before headers"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "reset/EOF before headers"},
		{&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}, "reset/EOF before headers"},
		{errors.New("loadgen: bad status line"), "other"},
		{errNoPod, failNoPod},
		{&net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}}, "dial: address already in use"},
	} {
		if got := failureClass(tc.err); got != tc.want {
			t.Errorf("failureClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// A real refusal's problem detail reaches the class, whether the body has
// a length or comes in chunks; a port nobody listens on is refused, and a
// server that closes before answering is a reset.
func TestFailureClassOfRealAttempts(t *testing.T) {
	t.Parallel()
	problem := func(status int, detail string, chunked bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"type":"about:blank","title":"x","status":%d,"detail":"%s"}`, status, detail)
			if chunked {
				w.(http.Flusher).Flush()
			}
		}
	}
	drop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	gone := httptest.NewServer(drop)
	gone.Close() // nobody listens on its port any more

	w := &worker{}
	s := &lstream{topic: "seller:1", token: "t"}
	for _, tc := range []struct {
		name string
		url  string
		want string
	}{
		{"draining", serve(t, problem(503, "this pod is draining; reconnect", false)), "503 draining"},
		{"busy, chunked", serve(t, problem(503, "this pod is busy starting other streams; reconnect", true)), "503 this pod is busy"},
		{"429", serve(t, problem(429, "too many open streams for this subject", false)), "429"},
		{"closed before answering", serve(t, drop), "reset/EOF before headers"},
		{"nobody listening", gone.URL, "refused"},
	} {
		_, _, err := w.request(s, tc.url, 0)
		if err == nil {
			t.Errorf("%s: the attempt succeeded", tc.name)
			continue
		}
		if got := failureClass(err); got != tc.want {
			t.Errorf("%s: %v classed %q, want %q", tc.name, err, got, tc.want)
		}
	}

	var f failures
	f.add(&statusError{code: 503, detail: "this pod is draining; reconnect"})
	f.add(&statusError{code: 503, detail: "this pod is draining; reconnect"})
	f.add(io.EOF)
	if total, note := failureNote(f.snapshot()); total != 3 || note != "503 draining 2, reset/EOF before headers 1" {
		t.Errorf("failureNote = %d, %q", total, note)
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
