package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// publisherFor returns a client that retries through outages with one
// idempotency key per call, as a careful producer would.
func publisherFor(s *stack.Stack, w *stack.Proc) *publisher.Client {
	return publisher.New(w.URL, publisher.WithToken(s.PublisherToken("chaos")),
		publisher.WithRetry(publisher.Retry{MaxAttempts: 200, Initial: 50 * time.Millisecond, Max: time.Second, MaxElapsed: 40 * time.Second}))
}

// publishSteady publishes total notifications over topics at about rate per
// second, one goroutine per share of topics so each topic keeps its order,
// and calls at(i) before the i-th notification of the first share.
func publishSteady(t *testing.T, ctx context.Context, pub *publisher.Client, l *stack.Ledger, topics []string, total, rate, workers int, at func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	perWorker := total / workers
	interval := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := range perWorker {
				if w == 0 && at != nil {
					at(i)
				}
				topic := topics[(i*workers+w)%len(topics)]
				res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{topic}, Type: "chaos", Data: i})
				if err != nil {
					errs <- fmt.Errorf("publish %d on %s: %w", i, topic, err)
					return
				}
				l.Add(topic, res.ID)
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// clientsOver opens n clients, each on per topics of topics, spread over
// pods, and waits until all are streaming.
func clientsOver(t *testing.T, ctx context.Context, s *stack.Stack, pods []string, topics []string, n, per int) []*stack.Client {
	t.Helper()
	var clients []*stack.Client
	for i := range n {
		mine := make([]string, per)
		for j := range mine {
			mine[j] = topics[(i*per+j)%len(topics)]
		}
		c, err := stack.NewClient(ctx, func() []string { return pods }, s.SubscriberToken(fmt.Sprint("c", i), mine...), mine, i)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	testwait.Until(t, 15*time.Second, "every client streaming", func() bool {
		for _, c := range clients {
			if !c.Opened() {
				return false
			}
		}
		return true
	})
	return clients
}

func seqTopics(kind string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s:%d", kind, i)
	}
	return out
}

// A stream resumes after a disconnect, by Last-Event-ID header and by
// lastEventId query parameter, across several topics: exactly what was
// missed, in per-topic order, then live.
func TestResumeByCursor(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	topics := []string{"seller:1", "seller:2", "device:a"}
	tok := s.SubscriberToken("u", topics...)
	pub := s.PublisherToken("svc")
	for _, how := range []string{"header", "query"} {
		c := open(t, r, tok, "")
		first := publish(t, w, pub, []string{"seller:1"}, "t", 0)
		ev, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if env, _ := stack.DecodeEnvelope(ev); env.ID != first {
			t.Fatalf("first event %s", ev.Data)
		}
		c.Close()
		var missed []string // in publish order; per-topic order is what counts
		for i := range 9 {
			missed = append(missed, publish(t, w, pub, []string{topics[i%3]}, "t", i))
		}
		var resumed *stack.Conn
		if how == "header" {
			h := bearer(tok)
			h.Set("Last-Event-ID", ev.ID)
			resumed, err = stack.Open(t.Context(), r.URL+"/v1/stream", h)
		} else {
			resumed, err = stack.Open(t.Context(), r.URL+"/v1/stream?access_token="+tok+"&lastEventId="+ev.ID, nil)
		}
		if err != nil || resumed.Resp.StatusCode != 200 {
			t.Fatalf("%s resume: %v", how, err)
		}
		got := map[string][]string{}
		for range missed {
			ev, err := resumed.Next(5 * time.Second)
			if err != nil {
				t.Fatalf("%s resume: %v after %v", how, err, got)
			}
			env, _ := stack.DecodeEnvelope(ev)
			got[env.Topic] = append(got[env.Topic], env.ID)
		}
		for i, topic := range topics {
			var want []string
			for j := i; j < len(missed); j += 3 {
				want = append(want, missed[j])
			}
			if !slices.Equal(got[topic], want) {
				t.Errorf("%s resume, topic %s: got %v, want %v", how, topic, got[topic], want)
			}
		}
		live := publish(t, w, pub, []string{"device:a"}, "t", 99)
		expect(t, resumed, live, "device:a")
		resumed.Close()
	}
}

// A cursor older than the history gives stream.reset, then what history
// still holds and then live events.
func TestCursorOlderThanHistory(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"HISTORY_MAX_LEN": "10"}), s.StartRead(nil)
	tok := s.SubscriberToken("u", "seller:1")
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	c := open(t, r, tok, "")
	first, _ := pub.Publish(t.Context(), publisher.Notification{Topics: []string{"seller:1"}, Type: "t", Data: 0})
	ev, err := c.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	batch := make([]publisher.Notification, 300) // trimming is per 100-entry node
	for i := range batch {
		batch[i] = publisher.Notification{Topics: []string{"seller:1"}, Type: "t", Data: i}
	}
	ids, err := pub.PublishBatch(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	h := bearer(tok)
	h.Set("Last-Event-ID", ev.ID)
	resumed, err := stack.Open(t.Context(), r.URL+"/v1/stream", h)
	if err != nil || resumed.Resp.StatusCode != 200 {
		t.Fatalf("resume: %v", err)
	}
	defer resumed.Close()
	reset, err := resumed.Next(5 * time.Second)
	if err != nil || reset.Type != "stream.reset" {
		t.Fatalf("first event after an old cursor: %q %q %v, want stream.reset", reset.Type, reset.Data, err)
	}
	var last string
	n := 0
	for {
		ev, err := resumed.Next(2 * time.Second)
		if err != nil {
			break
		}
		env, _ := stack.DecodeEnvelope(ev)
		if env.ID == first.ID {
			t.Fatal("replayed the event the cursor had already seen")
		}
		last, n = env.ID, n+1
	}
	if last != ids[len(ids)-1] || n >= len(ids) || n < 10 {
		t.Fatalf("after the reset: %d events ending at %s, want the tail of history ending at %s", n, last, ids[len(ids)-1])
	}
}

// While 10,000 notifications are published at a steady rate across 200
// topics, one read pod is killed with SIGKILL and another drained with
// SIGTERM: every client, reconnecting to a surviving pod, receives every
// notification of its topics exactly once and in order.
func TestPodKillAndDrainUnderLoad(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(nil)
	pods := []*stack.Proc{
		s.StartRead(map[string]string{"DRAIN_TIMEOUT": "3s"}),
		s.StartRead(map[string]string{"DRAIN_TIMEOUT": "3s"}),
		s.StartRead(map[string]string{"DRAIN_TIMEOUT": "3s"}),
	}
	urls := []string{pods[0].URL, pods[1].URL, pods[2].URL}
	topics := seqTopics("seller", 200)
	ledger := stack.NewLedger()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clients := clientsOver(t, ctx, s, urls, topics, 40, 5)

	const total = 10000
	drainExit := make(chan int, 1)
	publishSteady(t, ctx, publisherFor(s, w), ledger, topics, total, 1000, 4, func(i int) {
		switch i {
		case total / 4 / 3:
			pods[0].Kill()
		case 2 * total / 4 / 3:
			pods[1].Signal(syscall.SIGTERM)
			go func() {
				code, err := pods[1].Wait(10 * time.Second)
				if err != nil {
					t.Error(err)
				}
				drainExit <- code
			}()
			testwait.Until(t, 2*time.Second, "/readyz 503 while draining", func() bool {
				resp, err := http.Get(pods[1].URL + "/readyz")
				if err != nil {
					return true // already gone
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusServiceUnavailable
			})
			if c, err := stack.Open(ctx, pods[1].URL+"/v1/stream", bearer(s.SubscriberToken("late", topics[0]))); err == nil {
				if c.Resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("a new stream on a draining pod: status %d, want 503", c.Resp.StatusCode)
				}
				c.Close()
			}
		}
	})
	if code := <-drainExit; code != 0 {
		t.Errorf("drained pod exited %d, want 0\n%s", code, pods[1].Logs())
	}
	if err := stack.WaitAll(ledger, clients, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var reconnects int64
	for _, c := range clients {
		reconnects += c.Reconnects()
		if r := c.Resets(); len(r) > 0 {
			t.Errorf("a client got stream.reset for %v: history was not lost", r)
		}
	}
	if reconnects < 20 {
		t.Errorf("only %d reconnects: the pods' streams were not cut", reconnects)
	}
	if got := metric(t, pods[2], "notify_read_connections"); got != 40 {
		t.Errorf("surviving pod holds %v streams, want all 40", got)
	}
}

// Redis with an append-only file is killed mid-run and restarted: the
// streams stay open (no client reconnects), nothing acknowledged is lost
// and nothing arrives twice.
func TestRedisRestartWithAOF(t *testing.T) {
	t.Parallel()
	s := stack.New(t, redistest.WithAOF())
	w := s.StartWrite(nil)
	pods := []*stack.Proc{s.StartRead(nil), s.StartRead(nil)}
	urls := []string{pods[0].URL, pods[1].URL}
	topics := seqTopics("device", 20)
	ledger := stack.NewLedger()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clients := clientsOver(t, ctx, s, urls, topics, 10, 2)
	const total = 600
	frozen := false
	defer func() { // never leave a pod stopped, even on a failure
		if frozen {
			for _, p := range pods {
				p.Signal(syscall.SIGCONT)
			}
		}
	}()
	publishSteady(t, ctx, publisherFor(s, w), ledger, topics, total, 300, 2, func(i int) {
		if i != total/2/2 {
			return
		}
		s.Redis.Kill() // requests in flight retry until Redis is back
		time.Sleep(time.Second)
		// The pods are stopped before Redis returns and resumed only after
		// the last publish: what is published from now on can reach their
		// streams only by resubscribing and backfilling from history, not
		// live, and no later live event makes a stream fill a gap.
		for _, p := range pods {
			p.Signal(syscall.SIGSTOP)
		}
		frozen = true
		s.Redis.Restart()
	})
	for _, p := range pods {
		p.Signal(syscall.SIGCONT)
	}
	frozen = false
	if err := stack.WaitAll(ledger, clients, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if r := c.Resets(); len(r) > 0 {
			t.Errorf("client %d: stream.reset for %v although Redis kept everything", i, r)
		}
		if n := c.Reconnects(); n != 0 {
			t.Errorf("client %d reconnected %d times: its stream did not stay open through the outage", i, n)
		}
	}
}

// Redis without persistence restarts empty: the streams whose history is
// gone get stream.reset, never a silent gap, and then everything new.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	topics := []string{"seller:1", "seller:2"}
	ledger := stack.NewLedger()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := clientsOver(t, ctx, s, []string{r.URL}, topics, 1, len(topics))[0]
	pub := publisherFor(s, w)
	publishSteady(t, ctx, pub, ledger, topics, 40, 200, 1, nil)
	if err := stack.WaitAll(ledger, []*stack.Client{c}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s.Redis.Kill()
	s.Redis.Restart()
	publishSteady(t, ctx, pub, ledger, topics, 40, 200, 1, nil)
	testwait.Until(t, 10*time.Second, "stream.reset for both topics", func() bool {
		resets := c.Resets()
		return slices.Contains(resets, "seller:1") && slices.Contains(resets, "seller:2")
	})
	// Everything published after the restart arrives, after what came before.
	testwait.Until(t, 10*time.Second, "every notification published after the restart", func() bool {
		for _, topic := range topics {
			if stack.Compare(ledger.Topic(topic), c.Got(topic)) != nil {
				return false
			}
		}
		return true
	})

}

// MAX_CONNECTION_AGE closes streams (with jitter) so clients reconnect and
// rebalance; they resume by cursor and lose nothing.
func TestMaxConnectionAgeRebalancesWithoutLoss(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(nil)
	pods := []string{s.StartRead(map[string]string{"MAX_CONNECTION_AGE": "1s"}).URL, s.StartRead(map[string]string{"MAX_CONNECTION_AGE": "1s"}).URL}
	topics := []string{"fleet:acme"}
	ledger := stack.NewLedger()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := clientsOver(t, ctx, s, pods, topics, 1, 1)[0]
	publishSteady(t, ctx, publisherFor(s, w), ledger, topics, 300, 50, 1, nil)
	if err := stack.WaitAll(ledger, []*stack.Client{c}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.Reconnects() < 2 {
		t.Fatalf("%d reconnects in 6 s with MAX_CONNECTION_AGE=1s", c.Reconnects())
	}
}

// While Redis is hung (SIGSTOP) or gone (SIGKILL), a new stream and a
// publish are refused with 503 problem+json and Retry-After within the
// 3 s bound, never left hanging; a stream opened before stays open and
// gets what is published once Redis is back.
func TestRedisDownAnswers503(t *testing.T) {
	t.Parallel()
	s := stack.New(t, redistest.WithAOF()) // a restart keeps history: no stream.reset
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub, pubc := s.PublisherToken("svc"), publisherFor(s, w)
	tok := s.SubscriberToken("u", "seller:1", "seller:2")
	held := open(t, r, tok, "?topic=seller:1") // keeps seller:1 subscribed in the pod
	for _, fault := range []string{"SIGSTOP", "SIGKILL"} {
		if fault == "SIGSTOP" {
			s.Redis.Signal(syscall.SIGSTOP)
		} else {
			s.Redis.Kill()
		}
		requests := map[string]func() (*http.Request, error){
			"stream on a subscribed topic": func() (*http.Request, error) {
				return http.NewRequest(http.MethodGet, r.URL+"/v1/stream?topic=seller:1&access_token="+tok, nil)
			},
			"stream on a new topic": func() (*http.Request, error) {
				return http.NewRequest(http.MethodGet, r.URL+"/v1/stream?topic=seller:2&access_token="+tok, nil)
			},
			"publish": func() (*http.Request, error) {
				req, err := http.NewRequest(http.MethodPost, w.URL+"/v1/notifications", strings.NewReader(`{"topics":["seller:1"],"type":"t","data":1}`))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+pub)
				}
				return req, err
			},
		}
		var wg sync.WaitGroup
		for what, newReq := range requests {
			wg.Go(func() {
				req, err := newReq()
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				start := time.Now()
				resp, err := http.DefaultClient.Do(req.WithContext(ctx))
				took := time.Since(start)
				if err != nil {
					t.Errorf("%s, Redis %s: %v after %s", what, fault, err, took)
					return
				}
				resp.Body.Close()
				ra, raErr := strconv.Atoi(resp.Header.Get("Retry-After"))
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" || raErr != nil || ra < 0 {
					t.Errorf("%s, Redis %s: status %d %q Retry-After %q, want 503 application/problem+json with Retry-After",
						what, fault, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
				}
				if took > 3*time.Second {
					t.Errorf("%s, Redis %s: answered after %s, want within 3 s", what, fault, took.Round(time.Millisecond))
				}
			})
		}
		wg.Wait()
		if fault == "SIGSTOP" {
			s.Redis.Signal(syscall.SIGCONT)
		} else {
			s.Redis.Restart()
		}
		res, err := pubc.Publish(t.Context(), publisher.Notification{Topics: []string{"seller:1"}, Type: "t", Data: fault})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, held, res.ID, "seller:1")
	}
}
