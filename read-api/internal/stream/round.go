package stream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"notify/pkg/sse"
	"notify/read-api/internal/hub"
)

// resyncRetry is how soon a failed history read (Redis away) is retried.
const resyncRetry = 500 * time.Millisecond

// runner is the state a stream's rounds share; they write to the client
// Begin was given.
type runner struct {
	s        *Stream
	ctx      context.Context
	expiry   time.Time       // Options.Expiry
	drain    <-chan struct{} // Options.Drain
	try      TryWriter       // the client, if it can be written without waiting; nil: every round may wait
	maxAgeAt time.Time
	retryAt  time.Time // zero: no resync retry pending
	wakeAt   time.Time // when the next round is due unless woken before
	now      time.Time // when the round running began
	events   []*hub.Event
	resync   []int
}

func newRunner(s *Stream, ctx context.Context, opts Options) *runner {
	return &runner{s: s, ctx: ctx, expiry: opts.Expiry, drain: opts.Drain, maxAgeAt: time.Now().Add(opts.MaxAge)}
}

// outcome is how a round ended.
type outcome int

const (
	roundDone  outcome = iota // all written; wakeAt is set
	roundWait                 // the rest must wait: a round that may wait does it
	roundEnded                // the stream is over, with the error returned
)

// round does one round of the stream: the deadlines first, then whatever
// was queued, in one write. A round that may wait does all of it, on a
// goroutine of its own. A round that must not (mayWait false, on a
// run-queue worker, writing with r.try) stops at whatever would wait: the
// stream's last write once a deadline passed, a gap or resync to fill from
// history, a socket that does not take the whole write. It then returns
// roundWait and leaves the rest to a round that may wait: the events not
// yet handled stay in r.events, unwritten bytes in s.out.
//
// round keeps its own frame small, so that its deepest call chain, the
// write of a round that may wait, fits in a new goroutine's starting
// stack: a round that outgrew it copied its stack every time, a large
// share of read-api's CPU under a broadcast (docs/bench.md).
func (r *runner) round(mayWait bool) (outcome, error) {
	if out, err := r.frames(mayWait); out != roundDone {
		return out, err
	}
	if mayWait {
		if err := r.s.flush(); err != nil {
			return roundEnded, err
		}
	} else if out, err := r.tryWrite(); out != roundDone {
		return out, err
	}
	r.nextWake()
	return roundDone, nil
}

// frames turns what is due into frames in s.out, in order: the stream's
// end once a deadline passed, the live events, the resync, the heartbeat.
// It returns roundDone when s.out holds what to write.
func (r *runner) frames(mayWait bool) (outcome, error) {
	s := r.s
	r.now = time.Now()
	if !r.retryAt.IsZero() && !r.now.Before(r.retryAt) {
		r.retryAt = time.Time{} // due: the topics it was for are marked, this round takes them
	}
	if reason, over := r.overdue(); over {
		if !mayWait {
			return roundWait, nil
		}
		return roundEnded, s.finish(reason)
	}
	var slow bool
	r.events, r.resync, slow = s.take(r.events, r.resync)
	if slow {
		s.log.Info("closing slow stream", zap.Int("topics", len(s.topics)))
		return roundEnded, ErrSlow
	}
	if out, err := r.live(mayWait); out != roundDone {
		return out, err
	}
	if len(r.resync) > 0 {
		if !mayWait {
			return roundWait, nil
		}
		if err := r.resyncTopics(); err != nil {
			return roundEnded, err
		}
	}
	if len(s.out) == 0 && !r.now.Before(s.lastWrite.Add(s.limits.Heartbeat)) {
		s.out = sse.AppendComment(s.out, "")
	}
	return roundDone, nil
}

// overdue tells whether the stream must end now, and why: the pod drains,
// the stream reached its maximum age, or the token expired.
func (r *runner) overdue() (reason int, over bool) {
	select {
	case <-r.drain:
		return endDrain, true
	default:
	}
	switch {
	case !r.now.Before(r.maxAgeAt):
		return endMaxAge, true
	case !r.now.Before(r.expiry):
		return endExpired, true
	}
	return 0, false
}

// finish writes the stream's last frames for reason: stream.expired when
// the token expired; else (drain, maximum age) a random retry, so the
// clients of a draining or aged-out pod come back spread over time, to any
// pod.
func (s *Stream) finish(reason int) error {
	s.ended = reason
	if reason == endExpired {
		s.appendControl("stream.expired", []byte(`{"reason":"token expired"}`))
	} else {
		s.out = sse.AppendRetry(s.out, rand.Int64N(s.limits.Retry.Milliseconds()+1))
	}
	return s.flush()
}

// live appends the events taken, in order. An event after a gap needs
// history: a round that may wait fills the gap (fillGap); one that must
// not keeps that event and those after it in r.events.
func (r *runner) live(mayWait bool) (outcome, error) {
	s := r.s
	for i, ev := range r.events {
		if s.appendLive(ev) {
			continue
		}
		if !mayWait {
			r.events = r.events[:copy(r.events, r.events[i:])]
			clear(r.events[len(r.events):cap(r.events)])
			return roundWait, nil
		}
		marked, err := s.fillGap(r.ctx, ev)
		if err != nil {
			return roundEnded, err
		}
		if marked { // history unreadable now: retry it as a failed resync is
			r.retryAt = r.now.Add(resyncRetry)
		}
	}
	clear(r.events)
	r.events = r.events[:0]
	return roundDone, nil
}

// resyncTopics brings the topics marked for a resync up to date from
// history. Those Redis could not give are marked again and retried after
// resyncRetry (nextWake).
func (r *runner) resyncTopics() error {
	ok, err := r.s.catchUpTopics(r.ctx, r.resync)
	if err != nil {
		return err
	}
	if !ok {
		r.retryAt = r.now.Add(resyncRetry)
	}
	r.resync = r.resync[:0]
	return nil
}

// tryWrite writes what the socket takes now, without waiting; what it
// does not take waits in s.out for a round that may wait.
func (r *runner) tryWrite() (outcome, error) {
	s := r.s
	if len(s.out) == 0 {
		return roundDone, nil
	}
	n, err := r.try.TryWrite(s.out)
	if err != nil {
		return roundEnded, fmt.Errorf("stream: write: %w", err)
	}
	if n > 0 {
		s.lastWrite = r.now
	}
	if n < len(s.out) {
		s.out = s.out[:copy(s.out, s.out[n:])]
		return roundWait, nil
	}
	s.resetOut()
	return roundDone, nil
}

// nextWake sets when the next round is due unless woken before. One
// deadline serves the heartbeat, the token's expiry, the maximum age and
// the resync retry. A busy stream does not move it per write: the
// heartbeat counts from the last write when the deadline passes.
//
//go:noinline
func (r *runner) nextWake() {
	r.wakeAt = earliest(r.s.lastWrite.Add(r.s.limits.Heartbeat), r.expiry, r.maxAgeAt)
	if !r.retryAt.IsZero() {
		r.wakeAt = earliest(r.wakeAt, r.retryAt)
	}
}

// flush writes pending frames in one write with a deadline, so a client
// that stopped reading cannot hold the goroutine: one whose write times
// out ends as slow.
func (s *Stream) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	// The deadline is moved only once it is less than half a WriteTimeout
	// away: every write still gets at least WriteTimeout/2, and a busy
	// stream does not modify its connection's timer on every event.
	now := time.Now()
	s.lastWrite = now
	if s.deadline.Sub(now) < s.limits.WriteTimeout/2 {
		s.deadline = now.Add(s.limits.WriteTimeout)
		if err := s.rc.SetWriteDeadline(s.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("stream: set write deadline: %w", err)
		}
	}
	_, err := s.w.Write(s.out)
	if err == nil {
		err = s.rc.Flush()
	}
	s.resetOut()
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrSlow, err)
	case err != nil:
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}

// resetOut empties the output after a write.
func (s *Stream) resetOut() {
	if cap(s.out) > 16<<10 {
		s.out = nil // keep idle streams small
	} else {
		s.out = s.out[:0]
	}
}

// clearDeadline removes the write deadline flush set, for writers that
// never wait: an expired deadline would fail their next write.
func (s *Stream) clearDeadline() {
	if s.deadline.IsZero() {
		return
	}
	s.deadline = time.Time{}
	_ = s.rc.SetWriteDeadline(time.Time{})
}

// earliest is the first of ts.
func earliest(ts ...time.Time) time.Time {
	t := ts[0]
	for _, u := range ts[1:] {
		if u.Before(t) {
			t = u
		}
	}
	return t
}
