package httpapi

import "sync"

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
