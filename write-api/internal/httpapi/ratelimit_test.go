package httpapi

import (
	"fmt"
	"testing"
	"time"
)

func TestPublisherLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newPublisherLimiter(RateLimit{PerSecond: 2, Burst: 3})
	for i := range 3 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("4th request: ok=%v wait=%s, want refused with wait <= 500ms", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another publisher is limited by a's traffic")
	}
	// A refused request did not consume a token: after 500 ms exactly one is back.
	if ok, _ := l.allow("a", now.Add(500*time.Millisecond)); !ok {
		t.Fatal("token not refilled")
	}
	if ok, _ := l.allow("a", now.Add(500*time.Millisecond)); ok {
		t.Fatal("more than one token refilled in 500 ms")
	}
}

func TestPublisherLimiterOffAndBounded(t *testing.T) {
	t.Parallel()
	var off *publisherLimiter = newPublisherLimiter(RateLimit{})
	for range 1000 {
		if ok, _ := off.allow("a", time.Now()); !ok {
			t.Fatal("limit 0 must be off")
		}
	}
	now := time.Unix(1_700_000_000, 0)
	l := newPublisherLimiter(RateLimit{PerSecond: 100, Burst: 1})
	for i := range 3 * maxTrackedPublishers {
		l.allow(fmt.Sprint("sub-", i), now.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.subs); n > maxTrackedPublishers {
		t.Fatalf("%d limiters kept, bound is %d", n, maxTrackedPublishers)
	}
}
