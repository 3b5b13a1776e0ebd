package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/redisbus"
)

// One subject cannot hold more than MAX_CONNECTIONS_PER_SUBJECT streams;
// other subjects are unaffected, and a closed stream frees its slot.
func TestStreamLimitPerSubject(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	r := s.StartRead(map[string]string{"MAX_CONNECTIONS_PER_SUBJECT": "2"})
	tok := s.SubscriberToken("greedy", "seller:1")
	a, b := open(t, r, tok, ""), open(t, r, tok, "")
	_ = b
	c, err := stack.Open(t.Context(), r.URL+"/v1/stream", bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Resp.StatusCode != http.StatusTooManyRequests || c.Resp.Header.Get("Retry-After") == "" || c.Resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("3rd stream: %d %v", c.Resp.StatusCode, c.Resp.Header)
	}
	open(t, r, s.SubscriberToken("other", "seller:1"), "")
	a.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := stack.Open(t.Context(), r.URL+"/v1/stream", bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if c.Resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after close: %d", c.Resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PUBLISH_RATE_LIMIT/PUBLISH_RATE_BURST: over the burst a publisher gets
// 429 problem+json with Retry-After; another publisher is unaffected.
func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(map[string]string{"PUBLISH_RATE_LIMIT": "0.5", "PUBLISH_RATE_BURST": "3"})
	body := `{"topics":["seller:1"],"type":"t","data":1}`
	noisy := s.PublisherToken("noisy")
	for i := range 3 {
		if st, _, b, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", noisy, body, nil); st != http.StatusAccepted {
			t.Fatalf("request %d within burst: %d %s", i, st, b)
		}
	}
	st, h, b, _ := stack.Post(t.Context(), w.URL+"/v1/notifications/batch", noisy, `{"notifications":[`+body+`]}`, nil)
	ra, _ := strconv.Atoi(h.Get("Retry-After"))
	if st != http.StatusTooManyRequests || h.Get("Content-Type") != "application/problem+json" || ra < 1 || ra > 2 {
		t.Fatalf("over the burst: %d Retry-After %q %s", st, h.Get("Retry-After"), b)
	}
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", s.PublisherToken("quiet"), body, nil); st != http.StatusAccepted {
		t.Fatalf("another publisher: %d", st)
	}
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", "bad.token.x", body, nil); st != http.StatusUnauthorized {
		t.Fatalf("an invalid token is refused before the limiter: %d", st)
	}
}

// Headers trickled byte by byte are cut after ReadHeaderTimeout (5 s).
func TestSlowloris(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	for _, p := range []*stack.Proc{s.StartWrite(nil), s.StartRead(nil)} {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			closed := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(conn); closed <- b }()
			req := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
			for i := 0; ; i++ {
				select {
				case b := <-closed:
					d := time.Since(start)
					if d < 4*time.Second || d > 8*time.Second || bytes.Contains(b, []byte("200 OK")) {
						t.Fatalf("closed after %s with %q", d, b)
					}
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{req[i%len(req)]}); err != nil {
					if d := time.Since(start); d < 4*time.Second || d > 8*time.Second {
						t.Fatalf("write failed after %s: %v", d, err)
					}
					return
				}
				if time.Since(start) > 10*time.Second {
					t.Fatal("slow headers still accepted after 10 s")
				}
			}
		})
	}
}

// Oversized headers get 431; bodies over 1 MiB (with or without a
// Content-Length) and data over MAX_DATA_BYTES get 413; too many topics or
// items 400.
func TestOversized(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"MAX_DATA_BYTES": "1000", "MAX_BATCH": "3"}), s.StartRead(nil)
	pub := s.PublisherToken("svc")
	for _, u := range []string{w.URL + "/v1/notifications", r.URL + "/v1/stream", r.URL + "/healthz"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		req.Header.Set("X-Big", strings.Repeat("a", 40<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s with 40 KiB header: %d %q, want a 431 problem", u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// A request net/http refuses before any route runs is a problem too.
	for _, p := range []*stack.Proc{w, r} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\n\r\n") // no Host
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s, request without Host: %v", p.Name, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s, request without Host: %d %q, want a 400 problem", p.Name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	big := `{"topics":["seller:1"],"type":"t","data":"` + strings.Repeat("x", 1<<20) + `"}`
	post := func(body io.Reader) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.URL+"/v1/notifications", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+pub)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if st, ct := post(strings.NewReader(big)); st != http.StatusRequestEntityTooLarge || ct != "application/problem+json" {
		t.Fatalf("1 MiB body: %d %s", st, ct)
	}
	if st, _ := post(io.MultiReader(strings.NewReader(big))); st != http.StatusRequestEntityTooLarge { // chunked
		t.Fatalf("1 MiB chunked body: %d", st)
	}
	if st, _ := post(strings.NewReader(`{"topics":["seller:1"],"type":"t","data":"` + strings.Repeat("x", 1000) + `"}`)); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("data over MAX_DATA_BYTES: %d", st)
	}
	topics := make([]string, 101)
	for i := range topics {
		topics[i] = fmt.Sprintf(`"seller:%d"`, i)
	}
	if st, _ := post(strings.NewReader(`{"topics":[` + strings.Join(topics, ",") + `],"type":"t"}`)); st != http.StatusBadRequest {
		t.Fatalf("101 topics: %d", st)
	}
	item := `{"topics":["seller:1"],"type":"t"}`
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications/batch", pub, `{"notifications":[`+strings.Repeat(item+",", 3)+item+`]}`, nil); st != http.StatusBadRequest {
		t.Fatalf("batch over MAX_BATCH: %d", st)
	}
	q := strings.Repeat("&topic=seller:1", 33)
	c, err := stack.Open(t.Context(), r.URL+"/v1/stream?"+q, bearer(s.SubscriberToken("s", "seller:1")))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("33 topics: %d", c.Resp.StatusCode)
	}
}

// 10,000 connections opened and dropped without reading (a third send a
// whole stream request, a third half a request, a third nothing) while a
// normal stream keeps receiving in order; afterwards goroutines and heap
// return near their baseline.
func TestConnectionFlood(t *testing.T) {
	t.Parallel()
	const total, workers = 10000, 64
	s := stack.New(t)
	w := s.StartWrite(nil)
	r := s.StartRead(map[string]string{"MAX_CONNECTIONS_PER_SUBJECT": "100000"})
	normal := open(t, r, s.SubscriberToken("normal", "seller:normal"), "")
	time.Sleep(300 * time.Millisecond)
	baseG := metric(t, r, "go_goroutines")
	baseHeap := metric(t, r, "go_memstats_heap_inuse_bytes")

	floodTok := s.SubscriberToken("flood", "seller:flood")
	full := "GET /v1/stream?topic=seller:flood HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + floodTok + "\r\n\r\n"
	half := full[:len(full)/2]
	addr := strings.TrimPrefix(r.URL, "http://")

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	var next, dialErr atomic.Int64
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+wk%8))}, Timeout: 5 * time.Second}
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > total {
					return
				}
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					dialErr.Add(1)
					continue
				}
				switch i % 3 {
				case 0:
					_, _ = io.WriteString(conn, full)
				case 1:
					_, _ = io.WriteString(conn, half)
				}
				_ = conn.Close()
			}
		}()
	}

	// Meanwhile the normal stream receives every notification, in order,
	// and a sampler records the peaks of streams open on the pod (the flood
	// must reach the stream handler, not only the listener), goroutines and
	// heap in use.
	pub := s.PublisherToken("svc")
	floodDone := make(chan struct{})
	go func() { wg.Wait(); close(floodDone) }()
	names := []string{"notify_read_connections", "go_goroutines", "go_memstats_heap_inuse_bytes"}
	peaks := map[string]float64{}
	samples := 0
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-floodDone:
				return
			case <-time.After(5 * time.Millisecond):
			}
			m := scrape(r.URL, names...)
			if len(m) == len(names) {
				samples++
			}
			for k, v := range m {
				peaks[k] = max(peaks[k], v)
			}
		}
	}()
	sent := 0
	for flooding := true; flooding; sent++ {
		select {
		case <-floodDone:
			flooding = false
		case <-time.After(100 * time.Millisecond):
		}
		id := publish(t, w, pub, []string{"seller:normal"}, "tick", sent)
		expect(t, normal, id, "seller:normal")
	}
	if ctx.Err() != nil {
		t.Fatalf("flood did not finish in time: %d of %d", next.Load(), total)
	}
	if n := dialErr.Load(); n > total/100 {
		t.Fatalf("%d dials failed", n)
	}
	<-sampled // peaks and samples are the test goroutine's from here
	peakG, peakHeap := peaks["go_goroutines"], peaks["go_memstats_heap_inuse_bytes"]
	t.Logf("flood of %d connections done; %d notifications delivered meanwhile; %d samples: peak %v open streams, %v goroutines (baseline %v), heap in use %.1f MiB (baseline %.1f MiB)",
		total, sent, samples, peaks["notify_read_connections"], peakG, baseG, peakHeap/(1<<20), baseHeap/(1<<20))
	if peaks["notify_read_connections"] < 2 {
		t.Fatalf("the flood never opened a stream (peak %v): it did not exercise the handler", peaks["notify_read_connections"])
	}
	if samples < 3 {
		t.Fatalf("only %d complete samples of /metrics during the flood", samples)
	}
	// At most workers connections are open from the client side at once;
	// the pod may lag behind in noticing closes (the test logs its peaks),
	// but must stay far below what keeping a goroutine or a stream per
	// flood connection would reach.
	if peakG > baseG+2000 || peakHeap > baseHeap+64<<20 {
		t.Fatalf("flood peaks over the bound: goroutines %v (baseline %v + 2000), heap %.1f MiB (baseline %.1f + 64 MiB)", peakG, baseG, peakHeap/(1<<20), baseHeap/(1<<20))
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		g, conns := metric(t, r, "go_goroutines"), metric(t, r, "notify_read_connections")
		heap := metric(t, r, "go_memstats_heap_inuse_bytes")
		if g <= baseG+20 && conns == 1 && heap <= baseHeap+64<<20 {
			t.Logf("goroutines %v (baseline %v), heap in use %.1f MiB (baseline %.1f MiB)", g, baseG, heap/(1<<20), baseHeap/(1<<20))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to baseline: goroutines %v (baseline %v), streams %v, heap %.1f MiB (baseline %.1f MiB)", g, baseG, conns, heap/(1<<20), baseHeap/(1<<20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	id := publish(t, w, pub, []string{"seller:normal"}, "after", 0)
	expect(t, normal, id, "seller:normal")
	// The pod let go of the flood's topic in Redis too.
	ch := redisbus.Keys{Prefix: "notify:"}.Channel("seller:flood")
	for deadline := time.Now().Add(10 * time.Second); s.Redis.Client().PubSubNumSub(t.Context(), ch).Val()[ch] != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%s still subscribed after the flood", ch)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape reads unlabelled metrics from one /metrics answer (absent names
// are left out); usable outside the test goroutine.
func scrape(base string, names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		for _, name := range names {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					out[name] = f
				}
			}
		}
	}
	return out
}
