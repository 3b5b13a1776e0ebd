package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit bounds how fast one publisher (token subject) may call the
// publish endpoints. PerSecond <= 0 turns the limit off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// maxTrackedPublishers bounds the limiter map; past it, limiters that are
// full again (idle publishers) are dropped, so subjects cannot grow memory.
const maxTrackedPublishers = 10000

// publisherLimiter holds one token bucket per subject.
type publisherLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	subs  map[string]*rate.Limiter
}

func newPublisherLimiter(cfg RateLimit) *publisherLimiter {
	if cfg.PerSecond <= 0 {
		return nil
	}
	return &publisherLimiter{limit: rate.Limit(cfg.PerSecond), burst: max(cfg.Burst, 1), subs: map[string]*rate.Limiter{}}
}

// allow takes one token for sub, or reports how long until one is free.
// A nil limiter allows everything.
func (l *publisherLimiter) allow(sub string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	lim, found := l.subs[sub]
	if !found {
		if len(l.subs) >= maxTrackedPublishers {
			l.pruneLocked(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.subs[sub] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *publisherLimiter) pruneLocked(now time.Time) {
	for sub, lim := range l.subs {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.subs, sub)
		}
	}
}
