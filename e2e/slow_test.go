package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/sseclient"
	"notify/pkg/testwait"
)

// A client that stops reading while 50 MB flows to its topic: the pod's
// memory stays bounded, another stream receives everything on time, the
// slow stream is closed, and the client resumes by cursor with no loss.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	tok := s.SubscriberToken("slow", "seller:slow", "seller:fast")

	// The slow client: a raw connection with a tiny receive buffer that
	// reads the response head and then nothing.
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/stream?topic=seller:slow&access_token=%s HTTP/1.1\r\nHost: x\r\n\r\n", tok)
	br := bufio.NewReaderSize(conn, 4096)
	if status, err := br.ReadString('\n'); err != nil || !strings.Contains(status, "200") {
		t.Fatalf("slow stream: %q %v", status, err)
	}

	fast := open(t, r, tok, "?topic=seller:fast")
	// The topic's position before the flood: where the stalled client
	// resumes if the stream is cut before any event reached it.
	start := stateCursor(t, r.URL, tok, "seller:slow")
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ledger := stack.NewLedger()
	baseRSS, _ := r.RSS()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var peakRSS int64
	flooding := make(chan struct{})
	wg.Go(func() { // 50 MB: 800 notifications of 64 KB, 15 per request
		defer close(flooding)
		blob := strings.Repeat("x", 65000)
		for sent := 0; sent < 800; {
			n := min(15, 800-sent)
			batch := make([]publisher.Notification, n)
			for i := range batch {
				batch[i] = publisher.Notification{Topics: []string{"seller:slow"}, Type: "blob", Data: blob}
			}
			ids, err := pub.PublishBatch(ctx, batch)
			if err != nil {
				t.Error(err)
				return
			}
			for _, id := range ids {
				ledger.Add("seller:slow", id)
			}
			sent += n
			if rss, err := r.RSS(); err == nil {
				peakRSS = max(peakRSS, rss)
			}
		}
	})
	// Meanwhile the other stream gets every event promptly.
	var slowest time.Duration
	fastCount := 0
	for done := false; !done; {
		select {
		case <-flooding:
			done = true
		case <-time.After(50 * time.Millisecond):
		}
		res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{"seller:fast"}, Type: "tick", Data: fastCount})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now() // from the acknowledgement: the read side is what a stalled client could slow down
		expect(t, fast, res.ID, "seller:fast")
		slowest = max(slowest, time.Since(start))
		fastCount++
	}
	wg.Wait()
	if slowest > time.Second {
		t.Errorf("the other stream waited up to %s for an event during the flood", slowest)
	}
	t.Logf("read-api RSS: %d MiB before, peak %d MiB during 50 MB to a stalled stream; other stream: %d events, slowest %s",
		baseRSS>>20, peakRSS>>20, fastCount, slowest)
	if peakRSS-baseRSS > 64<<20 {
		t.Errorf("read-api grew by %d MiB while a client stalled: memory is not bounded", (peakRSS-baseRSS)>>20)
	}
	testwait.Until(t, 15*time.Second, "the slow stream is closed", func() bool {
		return metric(t, r, "notify_read_streams_closed_total{reason=\"slow\"}") >= 1 || metric(t, r, "notify_read_connections") == 1
	})

	// The client wakes up: it reads what reached it, then resumes by cursor.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	p := sseclient.NewParser(responseBody(br), nil)
	var got []string
	for {
		ev, err := p.Next()
		if err != nil {
			break
		}
		if env, err := stack.DecodeEnvelope(ev); err == nil && env.Topic == "seller:slow" {
			got = append(got, env.ID)
		}
	}
	if len(got) >= 800 {
		t.Fatalf("the stalled client got all %d events before resuming: nothing was cut", len(got))
	}
	cut := len(got)
	h := bearer(tok)
	from := p.LastEventID()
	if from == "" {
		from = start
	}
	h.Set("Last-Event-ID", from)
	resumed, err := stack.Open(t.Context(), r.URL+"/v1/stream?topic=seller:slow", h)
	if err != nil || resumed.Resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %v", err)
	}
	defer resumed.Close()
	for len(got) < 800 {
		ev, err := resumed.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("resume after %d events: %v", len(got), err)
		}
		env, _ := stack.DecodeEnvelope(ev)
		got = append(got, env.ID)
	}
	if err := stack.Compare(ledger.Topic("seller:slow"), got); err != nil {
		w := ledger.Topic("seller:slow")
		t.Fatalf("%v\nwant %v\ngot  %v (first %d from the stalled socket)", err, w[:4], got[:4], cut)
	}
}

// responseBody skips the rest of a raw HTTP/1.1 response head and returns
// its body: chunked, or (a stream that ends with its connection) as is.
func responseBody(br *bufio.Reader) io.Reader {
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			break
		}
		if strings.EqualFold(strings.TrimSpace(line), "Transfer-Encoding: chunked") {
			chunked = true
		}
	}
	if chunked {
		return httputil.NewChunkedReader(br)
	}
	return br
}

// A read-api frozen with SIGSTOP while publishing goes on, until Redis drops
// its pub/sub connection for an overflowing output buffer, notices after
// SIGCONT, resubscribes, and its streams receive everything by cursor.
func TestFrozenPodRecovers(t *testing.T) {
	t.Parallel()
	s := stack.New(t, redistest.WithArgs("--client-output-buffer-limit", "pubsub 65536 32768 1"))
	w, r := s.StartWrite(nil), s.StartRead(nil)
	topics := []string{"seller:1", "seller:2"}
	ledger := stack.NewLedger()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := clientsOver(t, ctx, s, []string{r.URL}, topics, 1, len(topics))[0]
	pub := publisherFor(s, w)
	publishSteady(t, ctx, pub, ledger, topics, 20, 200, 1, nil)

	r.Signal(syscall.SIGSTOP)
	defer r.Signal(syscall.SIGCONT)
	rc := s.Redis.Client()
	blob := strings.Repeat("y", 4000)
	testwait.Until(t, 20*time.Second, "Redis drops the frozen pod's subscription", func() bool {
		for i := range 20 {
			topic := topics[i%2]
			res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{topic}, Type: "blob", Data: blob})
			if err != nil {
				t.Fatal(err)
			}
			ledger.Add(topic, res.ID)
		}
		ch := redisbus.Keys{Prefix: "notify:"}.Channel("seller:1")
		return rc.PubSubNumSub(ctx, ch).Val()[ch] == 0
	})
	// Nothing is published after SIGCONT: no later live event can make the
	// stream fill its gap, only the pod's resubscribe and backfill can.
	r.Signal(syscall.SIGCONT)
	if err := stack.WaitAll(ledger, []*stack.Client{c}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if r := c.Resets(); len(r) > 0 {
		t.Errorf("stream.reset for %v: history was there", r)
	}
	if n := c.Reconnects(); n != 0 {
		t.Errorf("the client reconnected %d times: its stream did not stay open through the freeze", n)
	}
}

// stateCursor reads GET /v1/state for topic and returns its cursor: a
// stream resumed from it receives what is published to topic afterwards.
func stateCursor(t *testing.T, base, tok, topic string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/state?topic="+url.QueryEscape(topic), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Cursor string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK || st.Cursor == "" {
		t.Fatalf("state of %s: status %d, cursor %q, %v", topic, resp.StatusCode, st.Cursor, err)
	}
	return st.Cursor
}
