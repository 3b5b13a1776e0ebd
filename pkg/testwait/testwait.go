// Package testwait lets tests wait for a condition instead of sleeping:
// it polls until the condition holds, and fails the test once time is up.
package testwait

import (
	"testing"
	"time"
)

// poll is how often Until checks: short next to the waits tests ask for.
const poll = 10 * time.Millisecond

// Until polls cond until it reports true, failing t, which names what it
// waited for, if within passes first.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(poll)
	}
}
