package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/e2e/stack"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
)

// Redis Cluster with three masters: topics over all slots are delivered
// exactly and only where they belong, through sharded pub/sub; a master
// restarted mid-run (AOF on) costs nothing: streams recover by cursor.
func TestClusterDeliveryAndMasterRestart(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, redistest.WithAOF())
	s := stack.NewBare(t, map[string]string{"REDIS_CLUSTER_ADDRS": cl.Addrs()})
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(nil), s.StartRead(nil)
	pods := []string{r1.URL, r2.URL}
	topics := seqTopics("seller", 96)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clients := clientsOver(t, ctx, s, pods, topics, 32, 3)
	ledger := stack.NewLedger()
	pub := publisherFor(s, w)

	publishSteady(t, ctx, pub, ledger, topics, 600, 300, 3, nil)
	if err := stack.WaitAll(ledger, clients, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every master carries some of the pods' sharded channels, and no
	// classic channel of ours exists anywhere.
	keys := redisbus.Keys{Prefix: "notify:"}
	for i, m := range cl.Masters {
		shard, err := m.Client().PubSubShardChannels(ctx, "notify:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		classic, _ := m.Client().PubSubChannels(ctx, "notify:*").Result()
		topicsHere := slices.DeleteFunc(shard, func(ch string) bool { _, ok := keys.TopicOf(ch); return !ok })
		if len(topicsHere) == 0 || len(classic) != 0 {
			t.Errorf("master %d: %d sharded topic channels, %d classic channels; want some sharded and no classic", i, len(topicsHere), len(classic))
		}
	}

	publishSteady(t, ctx, pub, ledger, topics, 900, 300, 3, func(i int) {
		if i == 100 {
			cl.Masters[1].Kill()
			cl.Masters[1].Restart()
			cl.WaitOK(t)
		}
	})
	if err := stack.WaitAll(ledger, clients, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if r := c.Resets(); len(r) > 0 {
			t.Errorf("stream.reset for %v although the restarted master kept its data", r)
		}
	}
}

// Redis Sentinel: the master is killed under a steady publish load with
// streams on two pods. Publishes fail fast (503) during the failover and
// succeed after it; streams receive every notification the new master
// kept, and any it lost is announced with stream.reset, never skipped.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	sentinelFailover(t, redistest.StartSentinel(t))
}

// The same with passwords on master, replica and sentinels: the services
// authenticate to both, before and after the failover.
func TestSentinelFailoverWithPasswords(t *testing.T) {
	t.Parallel()
	st := redistest.StartSentinelAuth(t, "data-secret", "sentinel-secret")
	// The passwords are really required, so the services cannot be
	// getting through unauthenticated.
	for _, addr := range []string{st.Master.Addr(), st.Replica.Addr(), st.Sentinels[0].Addr()} {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		err := c.Ping(t.Context()).Err()
		c.Close()
		if err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("PING %s without a password: %v, want NOAUTH", addr, err)
		}
	}
	sentinelFailover(t, st)
}

func sentinelFailover(t *testing.T, st *redistest.Sentinel) {
	s := stack.NewBare(t, st.Env())
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(nil), s.StartRead(nil)
	pods := []string{r1.URL, r2.URL}
	topics := seqTopics("device", 20)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clients := clientsOver(t, ctx, s, pods, topics, 10, 2)
	ledger := stack.NewLedger()
	pub := publisherFor(s, w)
	probe := probeWrites(ctx, w.URL, s.PublisherToken("probe"))
	var failoverAt map[string]int // per topic: ledger length when the master died
	var killedAt time.Time
	publishSteady(t, ctx, pub, ledger, topics, 1500, 300, 2, func(i int) {
		if i == 200 {
			failoverAt = map[string]int{}
			for _, topic := range topics {
				failoverAt[topic] = len(ledger.Topic(topic))
			}
			killedAt = time.Now()
			st.Master.Kill()
		}
	})
	checkProbe(t, probe.stop(10*time.Second), killedAt)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := checkFailover(ledger, clients, failoverAt)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeProbe posts to write-api one request at a time, without retries,
// each bounded by a 5 s client timeout: it records what a publisher
// without a retry loop sees.
type writeProbe struct {
	mu      sync.Mutex
	answers []probeAnswer
	cancel  context.CancelFunc
	done    chan struct{}
}

type probeAnswer struct {
	sent, answered time.Time
	status         int
	header         http.Header
	err            error
}

func probeWrites(ctx context.Context, url, token string) *writeProbe {
	ctx, cancel := context.WithCancel(ctx)
	p := &writeProbe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ctx.Err() == nil && i < 2000; i++ {
			a := probeAnswer{sent: time.Now()}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			a.status, a.header, _, a.err = stack.Post(rctx, url+"/v1/notifications", token, fmt.Sprintf(`{"topics":["probe:1"],"type":"probe","data":%d}`, i), nil)
			rcancel()
			if ctx.Err() != nil {
				return // stopped mid-request: not an answer
			}
			a.answered = time.Now()
			p.mu.Lock()
			p.answers = append(p.answers, a)
			p.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return p
}

// stop waits (up to within) until the last five answers are 202, then ends
// the probe and returns every answer.
func (p *writeProbe) stop(within time.Duration) []probeAnswer {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.answers)
		ok := n >= 5 && !slices.ContainsFunc(p.answers[n-5:], func(a probeAnswer) bool { return a.status != http.StatusAccepted })
		p.mu.Unlock()
		if ok {
			break
		}
	}
	p.cancel()
	<-p.done
	return p.answers
}

// checkProbe: every answer is 202, or 503 problem+json with Retry-After,
// within the 3 s bound; and 202s come back after the failover.
func checkProbe(t *testing.T, answers []probeAnswer, killedAt time.Time) {
	t.Helper()
	var accepted, unavailable, acceptedAfter int
	var slowest time.Duration
	for _, a := range answers {
		took, at := a.answered.Sub(a.sent), a.sent.Sub(killedAt).Seconds()
		slowest = max(slowest, took)
		ra, _ := strconv.Atoi(a.header.Get("Retry-After"))
		switch {
		case a.err != nil:
			t.Errorf("POST at %+.1fs from the kill: %v after %s", at, a.err, took)
		case took > 3*time.Second:
			t.Errorf("POST at %+.1fs from the kill: %d after %s, want an answer within 3s", at, a.status, took)
		case a.status == http.StatusAccepted:
			accepted++
			if a.sent.After(killedAt) {
				acceptedAfter++
			}
		case a.status == http.StatusServiceUnavailable && a.header.Get("Content-Type") == "application/problem+json" && ra >= 1:
			unavailable++
		default:
			t.Errorf("POST at %+.1fs from the kill: %d %q Retry-After %q, want 202 or 503 problem+json with Retry-After",
				at, a.status, a.header.Get("Content-Type"), a.header.Get("Retry-After"))
		}
	}
	t.Logf("probe: %d answers, %d accepted (%d after the kill), %d unavailable, slowest %s", len(answers), accepted, acceptedAfter, unavailable, slowest)
	if n := len(answers); n < 5 || acceptedAfter < 5 || answers[n-1].status != http.StatusAccepted {
		t.Errorf("publishes did not succeed again after the failover: %d answers, %d accepted after the kill", n, acceptedAfter)
	}
}

// checkFailover: a topic without stream.reset must be received exactly; a
// topic with one must be received in order, without duplicates, and with
// everything published well after the failover.
func checkFailover(l *stack.Ledger, clients []*stack.Client, failoverAt map[string]int) error {
	for i, c := range clients {
		resets := c.Resets()
		for _, topic := range c.Topics {
			want, got := l.Topic(topic), c.Got(topic)
			if !slices.Contains(resets, topic) {
				if err := stack.Compare(want, got); err != nil {
					return fmt.Errorf("client %d topic %s (no reset): %w", i, topic, err)
				}
				continue
			}
			// Redis lost something here and said so. The tail published
			// after the new master took over must be there, in order.
			tail := want[min(len(want), failoverAt[topic]+len(want)/4):]
			if len(got) < len(tail) || !slices.Equal(got[len(got)-len(tail):], tail) {
				return fmt.Errorf("client %d topic %s (reset): the tail after the failover is incomplete", i, topic)
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					return fmt.Errorf("client %d topic %s: duplicate %s", i, topic, id)
				}
				seen[id] = true
			}
		}
	}
	return nil
}
