package redisbus

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
	"notify/pkg/redistest"
)

func newID(t *testing.T) string {
	t.Helper()
	id, err := notification.NewID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// An idempotent event is stored once per topic however many events the
// topic had between two attempts (history here keeps only ~5): the second
// attempt reports the first position and adds nothing.
func TestPublishOnceAfterManyEvents(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx := t.Context()
	id := newID(t)
	// Two topics of one partition: one once hash holds both.
	topics := []string{"seller:1", ""}
	for n := 2; topics[1] == ""; n++ {
		if tp := fmt.Sprintf("seller:%d", n); pub.keys.Partition(tp) == pub.keys.Partition(topics[0]) {
			topics[1] = tp
		}
	}
	events := []notification.Event{{Topic: topics[0], Body: body(1), Once: id}, {Topic: topics[1], Body: body(1), Once: id}}
	first, err := pub.Publish(ctx, events)
	if err != nil || first[0].Existed || first[1].Existed {
		t.Fatalf("first attempt: %+v %v", first, err)
	}
	for i := range 200 {
		if _, err := pub.Publish(ctx, []notification.Event{{Topic: topics[0], Body: body(100 + i), Once: newID(t)}, {Topic: topics[1], Body: body(100 + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	again, err := pub.Publish(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if !again[i].Existed || again[i].Pos != first[i].Pos {
			t.Fatalf("retry on %s: %+v, want the first attempt's %+v, existed", topics[i], again[i], first[i])
		}
	}
	pos, err := hist.Positions(ctx, topics)
	if err != nil || pos[0].Seq != 201 || pos[1].Seq != 201 {
		t.Fatalf("positions %+v %v: want 201 events per topic", pos, err)
	}
	ttl, err := r.Client().PTTL(ctx, pub.keys.Once(topics[0], id)).Result()
	if err != nil || ttl < 24*time.Hour {
		t.Fatalf("once hash TTL %s %v, want beyond the 24 h window", ttl, err)
	}
}

// A call that times out while Redis hangs is never sent again by go-redis:
// the first run happens once Redis resumes, and a second copy would publish
// the event twice. The same client does resend a plain command (INCR), which
// is what the publish script must be protected from.
func TestPublishNotResentAfterTimeout(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), ReadTimeout: 200 * time.Millisecond}) // default MaxRetries
	t.Cleanup(func() { _ = c.Close() })
	keys := Keys{Prefix: fmt.Sprintf("nr%d:", time.Now().UnixNano())}
	pub, hist := NewPublisher(c, keys, PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour}), NewHistory(c, keys)
	ctx := t.Context()
	if _, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(0)}}); err != nil { // loads the script
		t.Fatal(err)
	}

	var warm sync.WaitGroup // idle pooled connections, which go-redis resends on
	for range 8 {
		warm.Go(func() { _ = c.Ping(ctx).Err() })
	}
	warm.Wait()

	r.Signal(syscall.SIGSTOP)
	stalled := func(within time.Duration, do func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		return do(ctx)
	}
	// The control gets room for go-redis's backoff between resends even on
	// a loaded machine (with 2 s, one full `make test` saw a single copy).
	errIncr := stalled(4*time.Second, func(ctx context.Context) error { return c.Incr(ctx, keys.Prefix+"n").Err() })
	errPub := stalled(2*time.Second, func(ctx context.Context) error {
		_, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(1)}})
		return err
	})
	r.Signal(syscall.SIGCONT)
	if errIncr == nil || errPub == nil {
		t.Fatalf("calls during the stall succeeded: incr %v, publish %v", errIncr, errPub)
	}

	check := r.Client()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := check.Get(ctx, keys.Prefix+"n").Int()
		pos, err := hist.Positions(ctx, []string{"seller:1"})
		if err == nil && n >= 2 && pos[0].Seq >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the stall: INCR ran %d times (want a resend, >= 2), history at %+v %v", n, pos, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 { // whatever was still queued in Redis has run by now
		_ = check.Ping(ctx).Err()
	}
	if pos, _ := hist.Positions(ctx, []string{"seller:1"}); pos[0].Seq != 2 {
		t.Fatalf("the timed-out publish ran %d times, want once", pos[0].Seq-1)
	}
}
