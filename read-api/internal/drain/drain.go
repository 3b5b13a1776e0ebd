// Package drain closes a pod's streams gradually, so that their clients
// reconnect to other pods as a spread-out trickle rather than a storm.
package drain

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Drain tracks open streams and ends them on request.
type Drain struct {
	draining atomic.Bool
	mu       sync.Mutex
	open     map[*handle]struct{}
	done     chan struct{} // signalled when a stream is released during a drain
}

type handle struct {
	stop   chan struct{}
	onStop func()
	once   sync.Once
}

func (h *handle) close() {
	h.once.Do(func() {
		close(h.stop)
		if h.onStop != nil {
			h.onStop()
		}
	})
}

// New returns an idle Drain.
func New() *Drain {
	return &Drain{open: map[*handle]struct{}{}, done: make(chan struct{}, 1)}
}

// Draining reports whether the pod refuses new streams.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Register adds a stream; the channel closes when it must end, and onStop
// (if not nil) is called then, for streams that wait on something else.
func (d *Drain) Register(onStop func()) (<-chan struct{}, func()) {
	h := &handle{stop: make(chan struct{}), onStop: onStop}
	d.mu.Lock()
	d.open[h] = struct{}{}
	d.mu.Unlock()
	return h.stop, func() {
		d.mu.Lock()
		delete(d.open, h)
		d.mu.Unlock()
		select {
		case d.done <- struct{}{}:
		default:
		}
	}
}

// Open is the number of registered streams.
func (d *Drain) Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}

// step is how often a drain looks for streams due to close.
const step = 100 * time.Millisecond

// Start refuses new streams and closes the open ones evenly over 80% of
// within (the i-th of n at i/n of that), leaving the rest for them to
// finish: a few streams are spread as well as many. It returns when all
// are gone or ctx ends.
func (d *Drain) Start(ctx context.Context, within time.Duration) {
	d.draining.Store(true)
	d.mu.Lock()
	pending := make([]*handle, 0, len(d.open))
	for h := range d.open {
		pending = append(pending, h)
	}
	d.mu.Unlock()

	spread := within * 8 / 10
	start := time.Now()
	tick := time.NewTicker(step)
	defer tick.Stop()
	for i := 0; i < len(pending); {
		for ; i < len(pending) && time.Since(start) >= time.Duration(i)*spread/time.Duration(len(pending)); i++ {
			pending[i].close()
		}
		if i == len(pending) {
			break
		}
		select {
		case <-ctx.Done():
			for _, h := range pending[i:] {
				h.close()
			}
			return
		case <-tick.C:
		}
	}
	for d.Open() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-d.done:
		case <-tick.C:
		}
	}
}
