package stream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
	Drain       <-chan struct{} // closed when the pod wants the stream gone
	// Waiter parks the stream between events. Nil: one built on ctx, Drain
	// and a timer. A hijacked connection brings its own, which also
	// notices the client leaving, so that a stream is one goroutine.
	Waiter Waiter
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
	return s.Run(ctx, w, opts)
}

// Begin writes the response head and the replay: the first half of Serve,
// which a caller runs on the request's goroutine, whose stack is already
// deep enough for the history reads, before handing Run a goroutine of its
// own that then stays small.
func (s *Stream) Begin(ctx context.Context, w http.ResponseWriter, opts Options) error {
	if s.targets == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	waiter := opts.Waiter
	if waiter == nil {
		waiter = newChanWaiter(ctx, opts.Drain)
	}
	// From here on Push wakes the loop; events queued before are taken by
	// its first round.
	s.mu.Lock()
	s.waiter = waiter
	s.mu.Unlock()

	targets := s.targets
	s.targets = nil
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.out = sse.AppendRetry(s.out, s.limits.Retry.Milliseconds())
	s.start(ctx, opts.LastEventID, targets)
	return s.flush(w, http.NewResponseController(w))
}

// Run streams live events after Begin, until the stream ends.
func (s *Stream) Run(ctx context.Context, w http.ResponseWriter, opts Options) error {
	rc := http.NewResponseController(w)
	waiter := s.waiter
	if cw, ok := waiter.(*chanWaiter); ok {
		defer cw.stop()
	}
	// One deadline serves the heartbeat, the token's expiry, the maximum
	// age and the resync retry: the waiter is armed for whichever comes
	// first. A busy stream does not move it per write: the heartbeat
	// counts from the last write when the deadline passes.
	maxAgeAt := time.Now().Add(opts.MaxAge)
	var retryAt time.Time // zero: no resync retry pending
	var events []*hub.Event
	var resync []int
	for {
		var slow bool
		events, resync, slow = s.take(events, resync)
		if slow {
			s.log.Info("closing slow stream", zap.Int("topics", len(s.topics)))
			return ErrSlow
		}
		for _, ev := range events {
			s.handle(ctx, ev)
		}
		clear(events)
		if len(resync) > 0 {
			retryAt = time.Time{}
			if !s.catchUpTopics(ctx, resync) { // marked again: retried on a later round
				retryAt = time.Now().Add(resyncRetry)
			}
		}
		if err := s.flush(w, rc); err != nil {
			return err
		}

		wakeAt := earliest(s.lastWrite.Add(s.limits.Heartbeat), opts.Expiry, maxAgeAt)
		if !retryAt.IsZero() {
			wakeAt = earliest(wakeAt, retryAt)
		}
		if waiter.Wait(wakeAt) {
			return nil
		}
		select {
		case <-opts.Drain:
			return s.closeForRebalance(w, rc)
		default:
		}
		now := time.Now()
		if !now.Before(maxAgeAt) {
			return s.closeForRebalance(w, rc)
		}
		if !now.Before(opts.Expiry) {
			s.appendControl("stream.expired", []byte(`{"reason":"token expired"}`))
			return s.flush(w, rc)
		}
		if !now.Before(s.lastWrite.Add(s.limits.Heartbeat)) {
			s.out = sse.AppendComment(s.out, "")
		}
	}
}

// flush writes pending frames in one write with a deadline, so a client
// that stopped reading cannot hold the goroutine.
func (s *Stream) flush(w http.ResponseWriter, rc *http.ResponseController) error {
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
		if err := rc.SetWriteDeadline(s.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("stream: set write deadline: %w", err)
		}
	}
	_, err := w.Write(s.out)
	if err == nil {
		err = rc.Flush()
	}
	if cap(s.out) > 16<<10 {
		s.out = nil // keep idle streams small
	} else {
		s.out = s.out[:0]
	}
	if err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}

// closeForRebalance ends the stream with a random retry: so the clients of
// a draining or aged-out pod come back spread over time, to any pod.
func (s *Stream) closeForRebalance(w http.ResponseWriter, rc *http.ResponseController) error {
	s.out = sse.AppendRetry(s.out, rand.Int64N(s.limits.Retry.Milliseconds()+1))
	return s.flush(w, rc)
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
