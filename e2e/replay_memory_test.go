package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/notification"
	"notify/pkg/redisbus"
	"notify/pkg/testwait"
)

// Bounds of TestStalledReplaysHoldBoundedMemory. Ten streams replaying a
// 60 MB history at once held over a gigabyte when a replay was read
// whole; the pod's replay budget is 8 MiB of history pages.
const (
	stalledReplayGrowth = 96 << 20 // read-api's RSS while the clients stall, over its baseline
	afterReplayGrowth   = 48 << 20 // RSS and Go heap in use once every client left
)

// Ten clients of one subject resume from the first event of a topic whose
// history holds 1,000 events of 60 kB, and do not read. read-api's memory
// stays bounded, each stream is closed as slow, and each client then
// resumes by the cursor it reached and receives every event exactly once.
// Once they leave, memory returns near its baseline.
func TestStalledReplaysHoldBoundedMemory(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	r := s.StartRead(nil)
	const topic, events, clients = "seller:big", 1000, 10
	tok := s.SubscriberToken("resumer", topic)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The history is written straight into Redis, as write-api's script
	// stores it: 60 MB through the write API would only slow the test.
	pub := redisbus.NewPublisher(s.Redis.Client(), redisbus.Keys{Prefix: "notify:"}, redisbus.PublisherConfig{HistoryMaxLen: events, HistoryTTL: time.Hour})
	blob := strings.Repeat("r", 60000)
	publish := func(from, to int) []string {
		var ids []string
		var items []notification.Event
		for i := from; i < to; i++ {
			id := fmt.Sprintf("0192d1c0-0000-7000-8000-%012x", i+1)
			env := fmt.Sprintf(`{"id":%q,"topic":%q,"type":"blob","time":"2026-01-01T00:00:00Z","data":%q}`, id, topic, blob)
			items = append(items, notification.Event{Topic: topic, Body: notification.EncodeBody("blob", []byte(env)), Link: notification.LinkOf(id)})
			ids = append(ids, id)
			if len(items) == 20 || i == to-1 {
				if _, err := pub.Publish(ctx, items); err != nil {
					t.Fatal(err)
				}
				items = items[:0]
			}
		}
		return ids
	}

	// The first event, and the cursor a stream gives it.
	live := open(t, r, tok, "?topic="+topic)
	publish(0, 1)
	ev, err := live.Next(10 * time.Second)
	if err != nil || ev.ID == "" {
		t.Fatalf("first event: %v %+v", err, ev)
	}
	first := ev.ID
	live.Close()
	want := publish(1, events)
	testwait.Until(t, 10*time.Second, "the first stream released", func() bool { return metric(t, r, "notify_read_connections") == 0 })
	baseRSS, err := r.RSS()
	if err != nil {
		t.Fatal(err)
	}
	baseHeap := metric(t, r, "go_memstats_heap_inuse_bytes")

	// Ten clients resume from the first event and read nothing.
	stalled := make([]*stalledClient, clients)
	for i := range stalled {
		stalled[i] = stallFrom(t, r, tok, topic, first)
	}
	peakRSS := baseRSS
	testwait.Until(t, 60*time.Second, "every stalled stream closed as slow", func() bool {
		if rss, err := r.RSS(); err == nil {
			peakRSS = max(peakRSS, rss)
		}
		return metric(t, r, `notify_read_streams_closed_total{reason="slow"}`) >= clients && metric(t, r, "notify_read_connections") == 0
	})
	t.Logf("read-api RSS: %d MiB before, peak %d MiB while %d clients stalled replaying %d events of 60 kB (bound: +%d MiB)",
		baseRSS>>20, peakRSS>>20, clients, events-1, stalledReplayGrowth>>20)
	if peakRSS-baseRSS > stalledReplayGrowth {
		t.Errorf("read-api grew by %d MiB while replays stalled, more than %d MiB: replay memory is not bounded", (peakRSS-baseRSS)>>20, stalledReplayGrowth>>20)
	}

	// Each client reads what reached it, then resumes from there.
	var wg sync.WaitGroup
	for i, c := range stalled {
		wg.Go(func() {
			if err := c.resume(ctx, r.URL, tok, topic, want); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	testwait.Until(t, 10*time.Second, "every resumed stream released", func() bool { return metric(t, r, "notify_read_connections") == 0 })
	var rss int64
	var heap float64
	testwait.Until(t, 30*time.Second, "memory back near its baseline", func() bool {
		rss, _ = r.RSS()
		heap = metric(t, r, "go_memstats_heap_inuse_bytes")
		return rss-baseRSS <= afterReplayGrowth && heap-baseHeap <= afterReplayGrowth
	})
	t.Logf("after the clients left: RSS %d MiB, Go heap in use %d MiB (%d MiB before)", rss>>20, int64(heap)>>20, int64(baseHeap)>>20)
}

// stalledClient is a raw connection with a small receive buffer that sent
// its request and reads nothing until resume.
type stalledClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func stallFrom(t *testing.T, r *stack.Proc, tok, topic, cursor string) *stalledClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/stream?topic=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nLast-Event-ID: %s\r\n\r\n", topic, tok, cursor)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, 4096)
	if status, err := br.ReadString('\n'); err != nil || !strings.Contains(status, "200") {
		t.Fatalf("stalled stream: %q %v", status, err)
	}
	return &stalledClient{conn: conn, br: br}
}

// resume reads what the closed stream had sent, resumes by its last cursor
// and checks that the notifications received are want, in order, once.
func (c *stalledClient) resume(ctx context.Context, url, tok, topic string, want []string) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	stalled := newIDReader(responseBody(c.br))
	for stalled.next() == nil {
	}
	_ = c.conn.Close()
	got := stalled.ids
	if len(got) >= len(want) {
		return fmt.Errorf("the stalled client got all %d events: its stream was not cut", len(got))
	}
	cut := len(got)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/stream?topic="+topic, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Last-Event-ID", stalled.cursor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resume: status %d", resp.StatusCode)
	}
	resumed := newIDReader(resp.Body)
	resumed.ids = got
	for len(resumed.ids) < len(want) {
		if err := resumed.next(); err != nil {
			return fmt.Errorf("resumed after %d events, then: %w", cut, err)
		}
	}
	if err := stack.Compare(want, resumed.ids); err != nil {
		return fmt.Errorf("%w (first %d from the stalled socket)", err, cut)
	}
	return nil
}

// idReader reads an event stream for its notification ids and cursor
// only, without holding each event's 60 kB of data (sseclient would copy
// it: 600 MB for ten clients).
type idReader struct {
	br     *bufio.Reader
	ids    []string // notification ids, in order
	cursor string   // id: of the last complete event
	id     string   // id: of the event being read
}

func newIDReader(r io.Reader) *idReader { return &idReader{br: bufio.NewReaderSize(r, 64<<10)} }

// next reads up to the end of the next complete event.
func (r *idReader) next() error {
	var notification string
	for {
		line, err := r.br.ReadSlice('\n')
		head := bytes.Clone(line[:min(len(line), 256)]) // ReadSlice reuses its buffer
		for errors.Is(err, bufio.ErrBufferFull) {       // a long data line: only its start matters
			_, err = r.br.ReadSlice('\n')
		}
		if err != nil {
			return err
		}
		switch {
		case len(bytes.TrimRight(head, "\r\n")) == 0:
			if notification != "" || r.id != "" {
				if notification != "" {
					r.ids = append(r.ids, notification)
				}
				r.cursor = r.id
				return nil
			}
		case bytes.HasPrefix(head, []byte("id: ")):
			r.id = string(bytes.TrimRight(head[4:], "\r\n"))
		case bytes.HasPrefix(head, []byte(`data: {"id":"`)):
			rest := head[len(`data: {"id":"`):]
			if i := bytes.IndexByte(rest, '"'); i >= 0 {
				notification = string(rest[:i])
			}
		case bytes.HasPrefix(head, []byte("data: ")):
			notification = "unexpected:" + string(head[:min(len(head), 60)])
		}
	}
}
