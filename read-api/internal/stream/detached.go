package stream

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// Detached runs a stream after Begin without a goroutine of its own: a
// stream at rest is only memory and a timer. Each wake (events queued, a
// topic to resync, the deadline, the drain, the client hanging up) runs
// rounds on a short-lived goroutine until nothing is left to do. Deep
// call chains (writes, history reads) then never grow a stack that would
// stay grown, and no goroutine per stream sits parked for an hour.
type Detached struct {
	r     *runner
	onEnd func(error)
	state atomic.Int32
	gone  atomic.Bool // the client hung up
	timer *time.Timer
	armed time.Time // when timer fires; zero when it is not armed
}

// Round states. A wake while a round runs asks for one more.
const (
	idle int32 = iota
	running
	rerun
	ended
)

// Detach prepares a stream for Start; onEnd is called once when it ends,
// with nil when the client hung up.
func (s *Stream) Detach(ctx context.Context, w http.ResponseWriter, opts Options, onEnd func(error)) *Detached {
	d := &Detached{r: newRunner(s, ctx, w, opts), onEnd: onEnd}
	d.timer = time.AfterFunc(time.Hour, d.Wake)
	d.timer.Stop()
	return d
}

// Start runs the first round and makes the stream's wakes run the others.
func (d *Detached) Start() {
	d.r.s.setWaker(d)
	d.Wake()
}

// Hangup tells the stream that its client left.
func (d *Detached) Hangup() {
	d.gone.Store(true)
	d.Wake()
}

// Wake runs a round now, or once more after the one running.
func (d *Detached) Wake() {
	for {
		switch d.state.Load() {
		case idle:
			if d.state.CompareAndSwap(idle, running) {
				go d.rounds()
				return
			}
		case running:
			if d.state.CompareAndSwap(running, rerun) {
				return
			}
		default: // a round is asked for already, or the stream ended
			return
		}
	}
}

func (d *Detached) rounds() {
	for {
		end, err := true, error(nil)
		if !d.gone.Load() {
			end, err = d.r.step()
		}
		if end {
			d.state.Store(ended)
			d.timer.Stop()
			d.r.s.setWaker(nil)
			d.onEnd(err)
			return
		}
		d.arm(d.r.wakeAt)
		if d.state.CompareAndSwap(running, idle) {
			return
		}
		d.state.Store(running) // woken meanwhile: go again
	}
}

// arm makes the timer fire by at. A timer already due earlier is left
// alone: a busy stream does not move it on every write, and the round it
// causes finds nothing due and arms it again.
func (d *Detached) arm(at time.Time) {
	now := time.Now()
	if !d.armed.IsZero() && d.armed.After(now) && !d.armed.After(at) {
		return
	}
	d.armed = at
	d.timer.Reset(at.Sub(now))
}
