package sseclient

import (
	"math/rand/v2"
	"time"
)

// minGrowth is the smallest base for exponential growth, so that a
// server's "retry: 0" cannot turn repeated failures into a busy loop.
const minGrowth = 100 * time.Millisecond

// waitFor computes the delay before the next attempt: the reconnection time
// after a connection that opened, doubling for each further consecutive
// failed attempt, capped at maxDelay, shortened by a random fraction up to
// jitter, and never below the server's Retry-After (itself capped).
func waitFor(base time.Duration, failures int, retryAfter, maxDelay time.Duration, jitter float64) time.Duration {
	d := min(base, maxDelay)
	if failures > 1 {
		d = max(d, minGrowth)
		for i := 1; i < failures && d < maxDelay; i++ {
			d *= 2
		}
	}
	d = min(d, maxDelay)
	if jitter > 0 && d > 0 {
		d -= time.Duration(rand.Float64() * jitter * float64(d))
	}
	return max(d, min(retryAfter, maxDelay))
}
