package e2e

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
)

// The Go publisher client against the real write-api: single and batch
// publishes reach a read-api stream, an idempotency key replays, and the
// server's problems come back as typed errors.
func TestPublisherClient(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	c := open(t, r, s.SubscriberToken("pc", "seller:42", "device:1"), "")
	client := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("billing")))
	ctx := t.Context()

	res, err := client.Publish(ctx, publisher.Notification{Topics: []string{"seller:42", "seller:42"}, Type: "task.assigned", Data: map[string]int{"taskId": 7}},
		publisher.IdempotencyKey("task-7"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || len(res.Topics) != 1 {
		t.Fatalf("first publish %+v", res)
	}
	expect(t, c, res.ID, "seller:42")

	again, err := client.Publish(ctx, publisher.Notification{Topics: []string{"seller:42", "seller:42"}, Type: "task.assigned", Data: map[string]int{"taskId": 7}},
		publisher.IdempotencyKey("task-7"))
	if err != nil || !again.Replayed || again.ID != res.ID {
		t.Fatalf("replay %+v err %v, want replayed id %s", again, err, res.ID)
	}

	ids, err := client.PublishBatch(ctx, []publisher.Notification{
		{Topics: []string{"device:1"}, Type: "status", Data: "online"},
		{Topics: []string{"seller:42"}, Type: "task.done", Data: map[string]int{"taskId": 7}},
	})
	if err != nil || len(ids) != 2 {
		t.Fatalf("batch ids %v err %v", ids, err)
	}
	// Different topics have no mutual order: collect both.
	got := map[string]string{}
	for range 2 {
		ev, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := stack.DecodeEnvelope(ev)
		got[env.ID] = env.Topic
	}
	if got[ids[0]] != "device:1" || got[ids[1]] != "seller:42" {
		t.Fatalf("batch delivered %v, want %s on device:1 and %s on seller:42 (and no replayed duplicate)", got, ids[0], ids[1])
	}

	_, err = client.PublishBatch(ctx, []publisher.Notification{
		{Topics: []string{"device:1"}, Type: "status"},
		{Topics: []string{"device:1"}, Type: "stream.fake"},
	})
	var pe *publisher.Error
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Index == nil || *pe.Index != 1 || pe.Type != "urn:notify:problem:invalid-request" {
		t.Fatalf("invalid batch: %v (%+v)", err, pe)
	}

	sub := publisher.New(w.URL, publisher.WithToken(s.SubscriberToken("not-a-publisher", "device:1")))
	if _, err := sub.Publish(ctx, publisher.Notification{Topics: []string{"device:1"}, Type: "x"}); !errors.As(err, &pe) || pe.Status != 403 {
		t.Fatalf("subscriber token: %v", err)
	}
	if err := c.Quiet(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// While Redis is down write-api answers 503 with Retry-After; the client
// retries with the same idempotency key and succeeds once Redis is back.
func TestPublisherClientRetriesThroughOutage(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(nil)
	tok := s.PublisherToken("svc")
	var attempts atomic.Int32
	client := publisher.New(w.URL, publisher.WithTokenSource(func(context.Context) (string, error) {
		attempts.Add(1)
		return tok, nil
	}))

	s.Redis.Kill()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(4 * time.Second) // longer than write-api waits for Redis (3 s)
		s.Redis.Restart()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	res, err := client.Publish(ctx, publisher.Notification{Topics: []string{"device:9"}, Type: "status", Data: "online"})
	<-restarted
	if err != nil {
		t.Fatalf("publish through an outage: %v (after %d attempts)", err, attempts.Load())
	}
	if res.ID == "" || attempts.Load() < 2 {
		t.Fatalf("result %+v after %d attempts, want an id after a retry", res, attempts.Load())
	}
}
