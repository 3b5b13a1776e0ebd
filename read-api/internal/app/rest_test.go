package app

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"notify/pkg/devtoken"
	"notify/pkg/notification"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// Open streams at rest hold no goroutine of their own: 300 of them leave
// the pod's goroutine count where it was, still deliver, and are released
// as soon as their clients hang up. The client side here is plain
// connections read from this goroutine, so it adds no goroutines either.
func TestRestingStreamsHoldNoGoroutine(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	cycle(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+a.Addr()+"/v1/stream", "seller:warmup")
	testwait.Until(t, 6*time.Second, "warm-up stream released", func() bool { return a.drain.Open() == 0 })
	base := runtime.NumGoroutine()

	const n = 300
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range n {
		tok, err := devtoken.Subscriber(secret, "notifications", fmt.Sprintf("user-%d", i), []string{fmt.Sprintf("seller:%d", i)}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		conns[i], readers[i] = openRaw(t, a.Addr(), tok)
	}
	testwait.Until(t, 5*time.Second, fmt.Sprintf("goroutines back near %d with %d streams open", base, n), func() bool {
		return runtime.NumGoroutine() <= base+10
	})
	if got := a.drain.Open(); got != n {
		t.Fatalf("%d streams registered, want %d", got, n)
	}

	pub := redisbus.NewPublisher(r.Client(), redisbus.Keys{Prefix: "notify:"}, redisbus.PublisherConfig{HistoryMaxLen: 10, HistoryTTL: time.Hour})
	env := []byte(`{"id":"01J00000000000000000000000","topic":"seller:7","type":"t","time":"2026-01-01T00:00:00Z","data":{"k":1}}`)
	if _, err := pub.Publish(t.Context(), []notification.Event{{Topic: "seller:7", Body: notification.EncodeBody("t", env)}}); err != nil {
		t.Fatal(err)
	}
	_ = conns[7].SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := readers[7].ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event on a resting stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			if !strings.Contains(line, `"seller:7"`) {
				t.Fatalf("got %q", line)
			}
			break
		}
	}

	for _, c := range conns {
		_ = c.Close()
	}
	testwait.Until(t, 3*time.Second, "every stream released after its client hung up", func() bool { return a.drain.Open() == 0 })
}

// openRaw opens a stream over a plain connection and reads its head.
func openRaw(t *testing.T, addr, tok string) (net.Conn, *bufio.Reader) {
	t.Helper()
	return openStream(t, addr, tok, "")
}
