package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
	"notify/read-api/internal/config"
)

const secret = "app-test-secret-app-test-secret-0123456789"

func startApp(t *testing.T, r *redistest.Server) *App {
	t.Helper()
	return startAppWithLog(t, r, zap.NewNop())
}

func startAppWithLog(t *testing.T, r *redistest.Server, log *zap.Logger) *App {
	t.Helper()
	a, stop := runApp(t, r, log)
	t.Cleanup(stop)
	return a
}

// runApp starts an app; stop shuts it down and waits until Run returned.
func runApp(t *testing.T, r *redistest.Server, log *zap.Logger) (a *App, stop func()) {
	t.Helper()
	return runAppEnv(t, r, log, nil)
}

// runAppEnv is runApp with more settings.
func runAppEnv(t *testing.T, r *redistest.Server, log *zap.Logger, env map[string]string) (a *App, stop func()) {
	t.Helper()
	environ := map[string]string{"REDIS_URL": r.URL(), "JWT_HS256_SECRET": secret, "HTTP_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		environ[k] = v
	}
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	a, err = New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

// Two pods in one process, each with a stream on its run queue and its
// hang-up watcher, leave no goroutine behind once they stopped: each owns
// its workers and watcher, and stops them.
func TestStoppedAppsLeaveNoGoroutines(t *testing.T) {
	r := redistest.Start(t)
	base := runtime.NumGoroutine()
	for round := range 2 { // twice: nothing started by the first pair is left for the second
		a, stopA := runApp(t, r, zap.NewNop())
		b, stopB := runApp(t, r, zap.NewNop())
		for i, app := range []*App{a, b} {
			tok, err := devtoken.Subscriber(secret, "notifications", fmt.Sprintf("owner-%d-%d", round, i), []string{"seller:owned"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := openRaw(t, app.Addr(), tok)
			_ = c.Close() // the pod's watcher sees the hang-up and ends the stream
			testwait.Until(t, 10*time.Second, "the stream ended", func() bool { return app.Streams() == 0 && app.Hub().Members() == 0 })
		}
		stopA()
		stopB()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after both pods stopped, %d before:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// After 1,000 streams come and go, the pod is back where it started:
// goroutines, registry entries and Redis subscriptions.
func TestConnectDisconnectCyclesReturnToBaseline(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	rc := r.Client()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + a.Addr() + "/v1/stream"

	// Warm up one cycle so lazily started goroutines (Redis pub/sub reader,
	// pools) are part of the baseline.
	cycle(t, client, base, "seller:warmup")
	testwait.Until(t, 6*time.Second, "registry empty after warm-up", func() bool { return a.Hub().Topics() == 0 })
	baseGoroutines := runtime.NumGoroutine()

	const cycles, workers = 1000, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range cycles / workers {
				cycle(t, client, base, fmt.Sprintf("seller:%d-%d", w, i))
			}
		})
	}
	wg.Wait()
	if got := a.Hub().Topics(); got == 0 {
		t.Fatalf("registry already empty right after the cycles: the unsubscribe delay is not being exercised")
	}
	testwait.Until(t, 6*time.Second, "registry back to empty", func() bool { return a.Hub().Topics() == 0 })
	testwait.Until(t, 6*time.Second, "no Redis topic subscriptions", func() bool {
		chans, err := rc.PubSubChannels(t.Context(), redisbus.Keys{Prefix: "notify:"}.ChannelPattern()).Result()
		return err == nil && len(chans) == 0
	})
	if got := a.Hub().Subscribed(); got != 0 {
		t.Errorf("hub reports %d subscribed topics, want 0", got)
	}
	testwait.Until(t, 6*time.Second, fmt.Sprintf("goroutines back to %d", baseGoroutines), func() bool {
		return runtime.NumGoroutine() <= baseGoroutines+2
	})
}

func cycle(t *testing.T, client *http.Client, base, topic string) {
	tok, err := devtoken.Subscriber(secret, "notifications", "cycler-"+topic, []string{topic}, time.Hour) // a subject each: a stream released late under load is not a 429
	if err != nil {
		t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"?access_token="+tok, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stream %s: status %d", topic, resp.StatusCode)
	}
	buf := make([]byte, 16)
	_, _ = io.ReadAtLeast(resp.Body, buf, 8) // "retry: …": the stream is live
	cancel()
	resp.Body.Close()
}
