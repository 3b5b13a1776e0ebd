package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
	"notify/pkg/redistest"
	"notify/pkg/sseclient"
	"notify/pkg/testwait"
)

// markerSub is a reconnecting subscriber (resuming by cursor) that counts,
// per publish marker (data.m), the notification ids it received.
type markerSub struct {
	mu     sync.Mutex
	got    map[string][]string
	resets int
	opened atomic.Bool
}

func subscribeMarkers(t *testing.T, ctx context.Context, readURL, token, topic string) *markerSub {
	t.Helper()
	m := &markerSub{got: map[string][]string{}}
	s, err := sseclient.NewStream(sseclient.Config{
		NewRequest: func(ctx context.Context, _ string) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, readURL+"/v1/stream?topic="+topic+"&access_token="+token, nil)
		},
		ReconnectDelay: 200 * time.Millisecond,
		MaxDelay:       time.Second,
		RetryResponse:  sseclient.RetryUnavailable,
		OnOpen:         func(*http.Response) { m.opened.Store(true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(ctx, m.record) }()
	testwait.Until(t, 10*time.Second, "the subscriber's stream is open", m.opened.Load)
	return m
}

func (m *markerSub) record(ev sseclient.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Type {
	case "stream.reset":
		m.resets++
		return nil
	case "keyed":
	default:
		return nil
	}
	env, err := stack.DecodeEnvelope(ev)
	if err != nil {
		return err
	}
	var d struct{ M string }
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return fmt.Errorf("event data %s: %w", env.Data, err)
	}
	m.got[d.M] = append(m.got[d.M], env.ID)
	return nil
}

// keyedLoad is publishers with pkg/publisher (an idempotency key per call,
// retries after 503, 409 and network errors) on one topic, each publish
// carrying its own marker.
type keyedLoad struct {
	mu       sync.Mutex
	accepted map[string]string    // marker → id
	sentAt   map[string]time.Time // when the accepted publish was first sent
	replayed int                  // answers with Idempotent-Replayed: true
	failed   map[string]error     // gave up: outcome unknown
	n        atomic.Int64         // 202s so far
	wg       sync.WaitGroup
}

func runKeyed(ctx context.Context, pub *publisher.Client, topic string, workers int, stop <-chan struct{}) *keyedLoad {
	l := &keyedLoad{accepted: map[string]string{}, sentAt: map[string]time.Time{}, failed: map[string]error{}}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				marker := fmt.Sprintf("w%d-%d", w, i)
				sent := time.Now()
				res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{topic}, Type: "keyed", Data: map[string]string{"m": marker}})
				l.mu.Lock()
				if err != nil {
					l.failed[marker] = err
				} else {
					l.accepted[marker], l.sentAt[marker] = res.ID, sent
					if res.Replayed {
						l.replayed++
					}
					l.n.Add(1)
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *keyedLoad) replays() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replayed
}

// waitGrowth waits until the load has had n more 202s (Redis serves).
func (l *keyedLoad) waitGrowth(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	from := l.n.Load()
	testwait.Until(t, within, fmt.Sprintf("%d more accepted publishes", n), func() bool { return l.n.Load() >= from+n })
}

// check waits until the subscriber has every accepted publish (except
// those mayLose allows), then fails on any marker received twice, or
// received with another id than the one its publisher was given.
func (l *keyedLoad) check(t *testing.T, m *markerSub, within time.Duration, mayLose func(at time.Time) bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := func() (n int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for marker, at := range l.sentAt {
			if len(m.got[marker]) == 0 && !mayLose(at) {
				n++
			}
		}
		return n
	}
	began := time.Now()
	deadline := began.Add(within)
	for missing() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("subscriber caught up in %s", time.Since(began).Round(time.Millisecond))
	m.mu.Lock()
	defer m.mu.Unlock()
	var dup, other, lost, lostAllowed, outcomeUnknownDelivered int
	for marker, ids := range m.got {
		if len(ids) > 1 {
			dup++
			if dup <= 5 {
				t.Errorf("publish %s received %d times: ids %v", marker, len(ids), ids)
			}
		}
		if id, ok := l.accepted[marker]; ok && ids[0] != id {
			other++
			t.Errorf("publish %s answered id %s, received as %s", marker, id, ids[0])
		}
		if _, ok := l.failed[marker]; ok {
			outcomeUnknownDelivered++
		}
	}
	for marker, at := range l.sentAt {
		if len(m.got[marker]) == 0 {
			if mayLose(at) {
				lostAllowed++
			} else {
				lost++
			}
		}
	}
	t.Logf("%d publishes accepted (%d with Idempotent-Replayed), %d gave up (%d of those delivered), %d lost where allowed, %d stream.reset",
		len(l.accepted), l.replayed, len(l.failed), outcomeUnknownDelivered, lostAllowed, m.resets)
	if dup > 0 || other > 0 || lost > 0 {
		t.Fatalf("%d markers duplicated, %d with another id, %d accepted publishes never received", dup, other, lost)
	}
}

// keyedOnOneTopic starts a write-api and a read-api on s, a subscriber of
// topic, and workers keyed publishers on it until stop closes.
func keyedOnOneTopic(t *testing.T, s *stack.Stack, topic string, workers int, stop <-chan struct{}) (*keyedLoad, *markerSub) {
	t.Helper()
	w := s.StartWrite(map[string]string{"HISTORY_MAX_LEN": "1000000"})
	r := s.StartRead(nil)
	sub := subscribeMarkers(t, t.Context(), r.URL, s.SubscriberToken("u", topic), topic)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("keyed")),
		publisher.WithRetry(publisher.Retry{MaxAttempts: 50, Initial: 50 * time.Millisecond, Max: time.Second, MaxElapsed: 30 * time.Second}))
	return runKeyed(t.Context(), pub, topic, workers, stop), sub
}

// Many publishers with idempotency keys on one busy topic through three
// or more Redis stalls (SIGSTOP for 3 s): attempts time out with 503 while their
// scripts wait in Redis and run on SIGCONT; the retries, seconds and
// hundreds of events later, find them. Every accepted publish is received
// exactly once, and retries that find their first attempt's events answer
// Idempotent-Replayed.
func TestKeyedRetriesThroughRedisStalls(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	stop := make(chan struct{})
	load, sub := keyedOnOneTopic(t, s, "seller:busy", 48, stop)
	start := time.Now()
	load.waitGrowth(t, 1000, 15*time.Second)
	rate := float64(load.n.Load()) / time.Since(start).Seconds()
	// Three stalls, and up to three more until one has cut off an attempt
	// whose script was already in Redis (its retry then replays).
	for i := 0; i < 3 || (load.replays() == 0 && i < 6); i++ {
		s.Redis.Signal(syscall.SIGSTOP)
		time.Sleep(3 * time.Second) // the stall itself
		s.Redis.Signal(syscall.SIGCONT)
		t.Logf("stall %d over at %s, %d accepted", i, time.Since(start).Round(time.Millisecond), load.n.Load())
		load.waitGrowth(t, 1000, 15*time.Second)
		t.Logf("stall %d: 1000 more at %s", i, time.Since(start).Round(time.Millisecond))
	}
	close(stop)
	load.wg.Wait()
	t.Logf("publishers done at %s", time.Since(start).Round(time.Millisecond))
	t.Logf("%.0f publishes/s before the first stall", rate)
	if rate < 100 {
		t.Errorf("%.0f publishes/s: too few for a retry to come back more than 64 events later", rate)
	}
	load.check(t, sub, 20*time.Second, func(time.Time) bool { return false })
	if len(load.failed) > 0 {
		t.Errorf("%d publishes gave up", len(load.failed))
	}
	if load.replayed == 0 {
		t.Error("no retry answered Idempotent-Replayed: true, yet attempts were cut off by the stalls after their scripts were sent")
	}
}

// Keyed retries across a Sentinel failover (the master killed): no publish
// is delivered twice. A publish sent before the kill may be lost with the
// unreplicated tail, as history is; every one sent after is delivered.
func TestKeyedRetriesThroughSentinelFailover(t *testing.T) {
	t.Parallel()
	st := redistest.StartSentinel(t)
	s := stack.NewBare(t, st.Env())
	stop := make(chan struct{})
	load, sub := keyedOnOneTopic(t, s, "device:failover", 16, stop)
	load.waitGrowth(t, 500, 15*time.Second)
	killedAt := time.Now()
	st.Master.Kill()
	load.waitGrowth(t, 500, 30*time.Second) // the replica took over
	close(stop)
	load.wg.Wait()
	// A publish sent before the kill may have run on the old master and
	// been acknowledged from there, however late its 202 arrived on a
	// loaded machine: it may be lost with the unreplicated tail.
	load.check(t, sub, 20*time.Second, func(sent time.Time) bool { return sent.Before(killedAt) })
	if len(load.failed) > 0 {
		t.Errorf("%d publishes gave up", len(load.failed))
	}
}
