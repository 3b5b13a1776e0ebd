package httpapi

import (
	"context"
	"sync"
)

// subjectLimiter caps concurrent streams per token subject.
type subjectLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newSubjectLimiter(max int) *subjectLimiter {
	return &subjectLimiter{max: max, open: map[string]int{}}
}

func (l *subjectLimiter) acquire(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[sub] >= l.max {
		return false
	}
	l.open[sub]++
	return true
}

func (l *subjectLimiter) release(sub string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[sub]--; l.open[sub] <= 0 {
		delete(l.open, sub)
	}
}

// defaultMaxSetups bounds the streams a pod sets up at once. A setup is a
// Redis round trip or two and a replay; a few hundred at once keep a pod
// busy while Redis answers, and only a stalled Redis or a reconnect storm
// makes streams wait for a slot.
const defaultMaxSetups = 1024

// setupLimiter caps the streams being set up at once (from the join to
// the end of the replay): the others wait for a slot, so a reconnect storm
// reaches Redis a bounded number of streams at a time.
type setupLimiter struct{ slots chan struct{} }

func newSetupLimiter(max int) *setupLimiter {
	if max <= 0 {
		max = defaultMaxSetups
	}
	return &setupLimiter{slots: make(chan struct{}, max)}
}

// acquire waits for a slot until ctx ends; done gives it back and may be
// called more than once.
func (l *setupLimiter) acquire(ctx context.Context) (done func(), err error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { <-l.slots }) }, nil
}

// inSetup is how many streams are being set up.
func (l *setupLimiter) inSetup() int { return len(l.slots) }
