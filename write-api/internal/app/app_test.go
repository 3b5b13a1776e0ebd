package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/problem"
	"notify/pkg/redistest"
	"notify/write-api/internal/config"
)

const secret = "app-test-secret-app-test-secret-0123456789"

func startApp(t *testing.T, r *redistest.Server) *App {
	t.Helper()
	return startAppWith(t, r, nil)
}

// startAppWith lets the test change the app (its server's timeouts)
// before it runs.
func startAppWith(t *testing.T, r *redistest.Server, change func(*App)) *App {
	t.Helper()
	cfg, err := config.Load(map[string]string{"REDIS_URL": r.URL(), "JWT_HS256_SECRET": secret, "HTTP_ADDR": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func post(t *testing.T, url, tok string) (*http.Response, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"topics":["seller:1"],"type":"t","data":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	return resp, time.Since(start)
}

// With Redis gone, a publish is refused with 503 and Retry-After within
// 3 s, never left hanging; once Redis is back, publishing works again.
func TestRedisDownAnswers503ThenRecovers(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	url := "http://" + a.Addr() + "/v1/notifications"
	tok, _ := devtoken.Publisher(secret, "notifications", "svc", auth.ScopePublish, time.Hour)

	if resp, _ := post(t, url, tok); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("before the outage: status %d", resp.StatusCode)
	}
	r.Kill()
	for range 3 {
		resp, took := post(t, url, tok)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("during the outage: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if took > 3*time.Second {
			t.Fatalf("503 took %s, want under 3s", took)
		}
	}
	readyz, err := http.Get("http://" + a.Addr() + "/readyz")
	if err != nil || readyz.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during the outage: %v %v", readyz.StatusCode, err)
	}
	readyz.Body.Close()

	r.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := post(t, url, tok)
		if resp.StatusCode == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis came back: still status %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A client that sends the head and then stalls its body is answered 408
// problem+json once the server's read timeout passes, not 400.
func TestSlowBodyAnswers408(t *testing.T) {
	r := redistest.Start(t)
	a := startAppWith(t, r, func(a *App) { a.srv.ReadTimeout = 500 * time.Millisecond })
	tok, _ := devtoken.Publisher(secret, "notifications", "svc", auth.ScopePublish, time.Hour)
	conn, err := net.DialTimeout("tcp", a.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	head := "POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Authorization: Bearer " + tok + "\r\nContent-Length: 100\r\n\r\n{\"topics\":"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	var p problem.Body
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("body is not a problem: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d %q %+v, want a 408 problem", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
}
