package httpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/problem"
)

// startServer serves an engine like the services' through Serve on a free
// loopback port; ready fails, so /readyz answers 503.
func startServer(t *testing.T) string {
	t.Helper()
	engine := NewEngine(zap.NewNop(), []string{"https://app.example"})
	MountOps(engine, NewRegistry(), func(context.Context) error { return errors.New("draining") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, New(engine, zap.NewNop()), ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawExchange sends raw bytes and reads the responses to them.
func rawExchange(t *testing.T, addr, raw string, responses int) []*http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for range responses {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", len(out)+1, err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
	return out
}

// checkProblem fails unless resp is a problem+json answer with status
// whose detail contains detail.
func checkProblem(t *testing.T, resp *http.Response, status int, detail string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem.Body
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("body is not a problem: %v", err)
	}
	if p.Status != status || !strings.HasPrefix(p.Type, "urn:notify:problem:") || p.Title == "" {
		t.Errorf("problem %+v, want status %d", p, status)
	}
	if !strings.Contains(p.Detail, detail) {
		t.Errorf("detail %q, want it to contain %q", p.Detail, detail)
	}
}

// The answers net/http decides itself, before any handler runs, are
// problems like every other error, and so are CORS refusals and /readyz.
func TestEveryErrorIsAProblem(t *testing.T) {
	t.Parallel()
	addr := startServer(t)
	tests := []struct {
		name   string
		raw    string
		status int
		detail string
	}{
		{"oversized headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge, "too large"},
		{"malformed request line", "NOT A REQUEST\r\n\r\n", http.StatusBadRequest, "malformed"},
		{"missing Host", "GET /healthz HTTP/1.1\r\n\r\n", http.StatusBadRequest, "missing required Host header"},
		{"malformed header", "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", http.StatusBadRequest, "malformed"},
		{"unknown transfer coding", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
			http.StatusNotImplemented, "Transfer-Encoding"},
		{"HTTP/3.0 request line", "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", http.StatusHTTPVersionNotSupported, "unsupported protocol version"},
		{"unknown Expect", "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", http.StatusExpectationFailed, "100-continue"},
		{"origin not allowed", "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n", http.StatusForbidden, "origin"},
		{"preflight from an origin not allowed", "OPTIONS /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n\r\n",
			http.StatusForbidden, "origin"},
		{"not ready", "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusServiceUnavailable, "draining"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkProblem(t, rawExchange(t, addr, tc.raw, 1)[0], tc.status, tc.detail)
		})
	}
}

// On a kept-alive connection, answers before a malformed request are
// untouched, and the malformed one still gets its problem.
func TestMalformedAfterGoodRequest(t *testing.T) {
	t.Parallel()
	addr := startServer(t)
	resps := rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\nGARBAGE\r\n\r\n", 3)
	for i, resp := range resps[:2] {
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("response %d: %d %q %q, want 200 ok", i+1, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if got := resps[1].Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	checkProblem(t, resps[2], http.StatusBadRequest, "malformed")
}

// A handler that takes over a connection gets the socket itself.
func TestUnwrap(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Unwrap(&problemConn{Conn: a}) != a || Unwrap(b) != b {
		t.Fatal("Unwrap does not return the accepted connection")
	}
}
