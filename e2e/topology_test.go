package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
	st := redistest.StartSentinel(t)
	s := stack.NewBare(t, map[string]string{"REDIS_SENTINEL_ADDRS": st.SentinelAddrs(), "REDIS_SENTINEL_MASTER": st.Name})
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(nil), s.StartRead(nil)
	pods := []string{r1.URL, r2.URL}
	topics := seqTopics("device", 20)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clients := clientsOver(t, ctx, s, pods, topics, 10, 2)
	ledger := stack.NewLedger()
	pub := publisherFor(s, w)
	var failoverAt map[string]int // per topic: ledger length when the master died
	publishSteady(t, ctx, pub, ledger, topics, 1500, 300, 2, func(i int) {
		if i == 200 {
			failoverAt = map[string]int{}
			for _, topic := range topics {
				failoverAt[topic] = len(ledger.Topic(topic))
			}
			st.Master.Kill()
		}
	})
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
