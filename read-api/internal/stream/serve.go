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

// Options are a connection's own deadlines.
type Options struct {
	LastEventID string
	Expiry      time.Time       // the token's exp: stream.expired, then end
	MaxAge      time.Duration   // close after this long (already jittered)
	Drain       <-chan struct{} // closed when the pod wants the stream gone; Wake the stream then
	// Snapshot, when set, starts the stream with its topics' state
	// (snapshot=true): see startSnapshot.
	Snapshot StateReader
}

// Open reads the topics' current positions: what a resumed stream replays
// up to and where a new one starts. It is the last step that can fail
// before the response starts; Serve calls it if the caller did not.
func (s *Stream) Open(ctx context.Context) error {
	targets, err := s.history.Positions(ctx, s.topics)
	if err != nil {
		return fmt.Errorf("stream: read positions: %w", err)
	}
	s.targets = targets
	return nil
}

// resyncRetry is how soon a failed history read (Redis away) is retried.
const resyncRetry = 500 * time.Millisecond

// Serve writes the response headers, replays what the client missed and
// then streams live events until the client leaves, the token expires, the
// stream grows too old or slow, or the pod drains. The caller has joined
// the hub already, so nothing published from now on can be missed.
func (s *Stream) Serve(ctx context.Context, w http.ResponseWriter, opts Options) error {
	if err := s.Begin(ctx, w, opts); err != nil {
		return err
	}
	return s.Run(ctx, opts)
}

// Begin writes the response head and the replay: the first half of Serve.
// Events pushed meanwhile wait in the queue for the first round of Run or
// Detached.
func (s *Stream) Begin(ctx context.Context, w http.ResponseWriter, opts Options) error {
	if s.targets == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	targets := s.targets
	s.targets = nil
	s.w, s.rc = w, http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.out = sse.AppendRetry(s.out, s.limits.Retry.Milliseconds())
	var err error
	if opts.Snapshot != nil {
		err = s.startSnapshot(ctx, opts.Snapshot, opts.LastEventID, targets)
	} else {
		err = s.start(ctx, opts.LastEventID, targets)
	}
	if err != nil {
		return err
	}
	if opts.LastEventID != "" {
		s.countResume()
	}
	return s.flush()
}

// Run streams live events after Begin, until the stream ends, with its
// rounds on the caller's goroutine.
func (s *Stream) Run(ctx context.Context, opts Options) error {
	r := newRunner(s, ctx, opts)
	cw := newChanWaiter(ctx, opts.Drain)
	defer cw.stop()
	s.setWaker(cw)
	for {
		if end, err := r.step(); end {
			return err
		}
		if cw.Wait(r.wakeAt) {
			return nil
		}
	}
}

// runner is the state a stream's rounds share; they write to the client
// Begin was given.
type runner struct {
	s        *Stream
	ctx      context.Context
	opts     Options
	maxAgeAt time.Time
	retryAt  time.Time // zero: no resync retry pending
	wakeAt   time.Time // when the next round is due unless woken before
	events   []*hub.Event
	resync   []int
}

func newRunner(s *Stream, ctx context.Context, opts Options) *runner {
	return &runner{s: s, ctx: ctx, opts: opts, maxAgeAt: time.Now().Add(opts.MaxAge)}
}

// step does one round: the deadlines first, then whatever was queued, in
// one write. It keeps its own frame small, so that a round's deepest call
// chain, the write, fits in a new goroutine's starting stack: a round that
// outgrew it copied its stack every time, a large share of read-api's CPU
// under a broadcast (docs/bench.md).
func (r *runner) step() (end bool, err error) {
	if end, err = r.collect(); end {
		return end, err
	}
	if err = r.s.flush(); err != nil {
		return true, err
	}
	r.nextWake()
	return false, nil
}

// collect checks the deadlines and turns what was queued into frames.
func (r *runner) collect() (end bool, err error) {
	s, opts := r.s, &r.opts
	select {
	case <-opts.Drain:
		s.ended = endDrain
		return true, s.closeForRebalance()
	default:
	}
	now := time.Now()
	if !now.Before(r.maxAgeAt) {
		s.ended = endMaxAge
		return true, s.closeForRebalance()
	}
	if !now.Before(opts.Expiry) {
		s.ended = endExpired
		s.appendControl("stream.expired", []byte(`{"reason":"token expired"}`))
		return true, s.flush()
	}
	if !now.Before(s.lastWrite.Add(s.limits.Heartbeat)) {
		s.out = sse.AppendComment(s.out, "")
	}

	var slow bool
	r.events, r.resync, slow = s.take(r.events, r.resync)
	if slow {
		s.log.Info("closing slow stream", zap.Int("topics", len(s.topics)))
		return true, ErrSlow
	}
	for _, ev := range r.events {
		if err := s.handle(r.ctx, ev); err != nil {
			return true, err
		}
	}
	clear(r.events)
	r.events = r.events[:0]
	if len(r.resync) > 0 {
		r.retryAt = time.Time{}
		ok, err := s.catchUpTopics(r.ctx, r.resync)
		if err != nil {
			return true, err
		}
		if !ok { // marked again: retried on a later round
			r.retryAt = time.Now().Add(resyncRetry)
		}
		r.resync = r.resync[:0]
	}
	return false, nil
}

// stepOutcome is how a round that must not wait (tryStep) ended.
type stepOutcome int

const (
	stepDone  stepOutcome = iota // all written; wakeAt is set
	stepWait                     // the rest must wait (history, a full socket, the last write): run step on a goroutine
	stepEnded                    // the stream is over, with the error returned
)

// tryStep is a round that never waits, for the pod's run queue: live
// events that continue their topics, the heartbeat, and one write of what
// the socket takes now. Whatever would wait (a gap or resync to fill from
// history, a socket that did not take everything, the stream's last write
// at expiry, maximum age or drain) is left for step, on a goroutine: the
// events not yet handled stay in r.events, unwritten bytes in s.out.
func (r *runner) tryStep(w TryWriter) (stepOutcome, error) {
	s, opts := r.s, &r.opts
	select {
	case <-opts.Drain:
		return stepWait, nil
	default:
	}
	now := time.Now()
	if !now.Before(r.maxAgeAt) || !now.Before(opts.Expiry) || len(s.out) > 0 {
		return stepWait, nil
	}
	var slow bool
	r.events, r.resync, slow = s.take(r.events, r.resync)
	if slow {
		s.log.Info("closing slow stream", zap.Int("topics", len(s.topics)))
		return stepEnded, ErrSlow
	}
	for i, ev := range r.events {
		if !s.appendLive(ev) {
			r.events = r.events[:copy(r.events, r.events[i:])]
			clear(r.events[len(r.events):cap(r.events)])
			return stepWait, nil
		}
	}
	clear(r.events)
	r.events = r.events[:0]
	if len(r.resync) > 0 {
		return stepWait, nil
	}
	if len(s.out) == 0 && !now.Before(s.lastWrite.Add(s.limits.Heartbeat)) {
		s.out = sse.AppendComment(s.out, "") // only here: step adds its own
	}
	if len(s.out) > 0 {
		n, err := w.TryWrite(s.out)
		if err != nil {
			return stepEnded, fmt.Errorf("stream: write: %w", err)
		}
		if n > 0 {
			s.lastWrite = now
		}
		if n < len(s.out) {
			s.out = s.out[:copy(s.out, s.out[n:])]
			return stepWait, nil
		}
		s.resetOut()
	}
	r.nextWake()
	return stepDone, nil
}

// nextWake sets when the next round is due unless woken before. One
// deadline serves the heartbeat, the token's expiry, the maximum age and
// the resync retry. A busy stream does not move it per write: the
// heartbeat counts from the last write when the deadline passes.
//
//go:noinline
func (r *runner) nextWake() {
	r.wakeAt = earliest(r.s.lastWrite.Add(r.s.limits.Heartbeat), r.opts.Expiry, r.maxAgeAt)
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

// closeForRebalance ends the stream with a random retry: so the clients of
// a draining or aged-out pod come back spread over time, to any pod.
func (s *Stream) closeForRebalance() error {
	s.out = sse.AppendRetry(s.out, rand.Int64N(s.limits.Retry.Milliseconds()+1))
	return s.flush()
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
