package stream

import (
	"context"
	"time"
)

// waker is told that a stream has work: events queued, a topic to resync,
// the drain. Wake is called from any goroutine and never blocks.
type waker interface{ Wake() }

// chanWaiter parks Run between rounds on channels and a timer: for
// connections served through net/http, whose request context says when the
// client left. Wait returns once Wake was called (remembered until then),
// the deadline passed or the pod drains, reporting gone when the client
// has left.
type chanWaiter struct {
	ctx   context.Context
	drain <-chan struct{}
	wake  chan struct{}
	timer *time.Timer
	armed time.Time // the timer's deadline; zero once it fired
}

func newChanWaiter(ctx context.Context, drain <-chan struct{}) *chanWaiter {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &chanWaiter{ctx: ctx, drain: drain, wake: make(chan struct{}, 1), timer: t}
}

func (w *chanWaiter) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *chanWaiter) Wait(deadline time.Time) bool {
	if !deadline.Equal(w.armed) {
		w.timer.Reset(time.Until(deadline))
		w.armed = deadline
	}
	select {
	case <-w.ctx.Done():
		return true
	case <-w.drain:
	case <-w.timer.C:
		w.armed = time.Time{}
	case <-w.wake:
	}
	return false
}

func (w *chanWaiter) stop() { w.timer.Stop() }
