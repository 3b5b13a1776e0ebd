package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/redistest"
	"notify/write-api/internal/config"
)

const secret = "app-test-secret-app-test-secret-0123456789"

func startApp(t *testing.T, r *redistest.Server) *App {
	t.Helper()
	cfg, err := config.Load(map[string]string{"REDIS_URL": r.URL(), "JWT_HS256_SECRET": secret, "HTTP_ADDR": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
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
