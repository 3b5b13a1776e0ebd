package stream

import (
	"context"
	"sync/atomic"
	"time"
)

// Detached runs a stream's rounds (runner.round) after Begin, without a
// goroutine of its own: a stream at rest is only memory and a timer. Each
// wake (events queued, a topic to resync, the deadline, the drain, the
// client hanging up) queues a round on the pod's run queue (Limits.Runs).
// A round that might wait, for history or for a socket that does not take
// the whole write, continues on a short-lived goroutine until nothing is
// left to do; so does every round of a client that cannot be written
// without waiting (not a TryWriter) or of a pod without a run queue. Deep
// call chains then never grow a stack that would stay grown, and no
// goroutine per stream sits parked for an hour.
//
// Its lifecycle has one owner, the caller of Detach: it prepares the
// stream, registers whatever may wake it (the hang-up watch, the drain),
// then calls Start, the only way a round begins. Wakes before Start only
// ask for a round, so no callback runs before registration completes, and
// onEnd, given to Start, reads only what was set up before it.
type Detached struct {
	r     *runner
	runs  *RunQueue   // the pod's (Limits.Runs)
	onEnd func(error) // set by Start
	state atomic.Int32
	gone  atomic.Bool // the client hung up
	timer *time.Timer
	armed time.Time // when timer fires; zero when it is not armed
}

// TryWriter is a connection that can be written without waiting: the
// hijacked socket. TryWrite writes what the socket takes now, possibly
// nothing, and never blocks.
type TryWriter interface {
	TryWrite(b []byte) (int, error)
}

// Round states. A wake while a round is queued or runs asks for one more.
// A Detached starts as if its first round were running: wakes before Start
// only ask for another, and Start runs the first.
const (
	idle int32 = iota
	running
	rerun
	ended
)

// Detach prepares a stream, after Begin, for Start. If the pod has a run
// queue and the client Begin wrote to is a TryWriter, rounds that need not
// wait run on the queue.
func (s *Stream) Detach(ctx context.Context, opts Options) *Detached {
	d := &Detached{r: newRunner(s, ctx, opts)}
	if d.runs = s.limits.Runs; d.runs != nil {
		d.r.try, _ = s.w.(TryWriter)
	}
	d.state.Store(running)
	d.timer = time.AfterFunc(time.Hour, d.Wake)
	d.timer.Stop()
	return d
}

// Start runs the first round and makes the stream's wakes run the others;
// onEnd is called once, on a round's goroutine, when the stream ends: with
// nil when the client hung up. Call it once, after registering everything
// that may wake or hang up the stream.
func (d *Detached) Start(onEnd func(error)) {
	d.onEnd = onEnd
	if d.r.try != nil {
		d.r.s.clearDeadline() // Begin's: TryWrite must not meet it expired
	}
	d.r.s.setWaker(d)
	d.state.Store(running) // what woke it meanwhile, the first round sees
	d.schedule()
}

// schedule runs the round the state was set to running for.
func (d *Detached) schedule() {
	if d.r.try != nil {
		d.runs.push(d)
	} else {
		go d.rounds()
	}
}

// Hangup tells the stream that its client left.
func (d *Detached) Hangup() {
	d.gone.Store(true)
	d.Wake()
}

// Wake queues a round now, or once more after the one queued or running.
func (d *Detached) Wake() {
	for {
		switch d.state.Load() {
		case idle:
			if d.state.CompareAndSwap(idle, running) {
				d.schedule()
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

// runInline runs one round that must not wait on a run-queue worker; what
// would wait continues on a goroutine of its own.
func (d *Detached) runInline() {
	if d.gone.Load() {
		d.end(nil)
		return
	}
	switch out, err := d.r.round(false); out {
	case roundEnded:
		d.end(err)
	case roundWait:
		go d.rounds()
	default:
		d.arm(d.r.wakeAt)
		if !d.state.CompareAndSwap(running, idle) {
			d.state.Store(running) // woken meanwhile: queue it again, behind the others
			d.runs.push(d)
		}
	}
}

// rounds runs rounds that may wait, on their own goroutine, until the
// stream has nothing left to do.
func (d *Detached) rounds() {
	for {
		out, err := roundEnded, error(nil)
		if !d.gone.Load() {
			out, err = d.r.round(true)
		}
		if out == roundEnded {
			d.end(err)
			return
		}
		d.arm(d.r.wakeAt)
		if d.r.try != nil {
			d.r.s.clearDeadline() // back to rounds that never wait
		}
		if d.state.CompareAndSwap(running, idle) {
			return
		}
		d.state.Store(running) // woken meanwhile: go again
	}
}

func (d *Detached) end(err error) {
	d.state.Store(ended)
	d.timer.Stop()
	d.r.s.setWaker(nil)
	d.onEnd(err)
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
