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
}

// resyncRetry is how soon a failed history read (Redis away) is retried.
const resyncRetry = 500 * time.Millisecond

// Serve writes the response headers, replays what the client missed and
// then streams live events until the client leaves, the token expires, the
// stream grows too old or slow, or the pod drains. The caller has joined
// the hub already, so nothing published from now on can be missed.
func (s *Stream) Serve(ctx context.Context, w http.ResponseWriter, opts Options) error {
	rc := http.NewResponseController(w)
	targets, err := s.history.Positions(ctx, s.topics)
	if err != nil {
		return fmt.Errorf("stream: read positions: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.out = sse.AppendRetry(s.out, s.limits.Retry.Milliseconds())
	s.start(ctx, opts.LastEventID, targets)
	if err := s.flush(w, rc); err != nil {
		return err
	}

	heartbeat := time.NewTimer(s.limits.Heartbeat)
	defer heartbeat.Stop()
	expiry := time.NewTimer(time.Until(opts.Expiry))
	defer expiry.Stop()
	maxAge := time.NewTimer(opts.MaxAge)
	defer maxAge.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()

	var events []*hub.Event
	var resync []int
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-opts.Drain:
			return s.closeForRebalance(w, rc)
		case <-maxAge.C:
			return s.closeForRebalance(w, rc)
		case <-expiry.C:
			s.appendControl("stream.expired", []byte(`{"reason":"token expired"}`))
			return s.flush(w, rc)
		case <-heartbeat.C:
			s.out = sse.AppendComment(s.out, "")
		case <-retry.C:
			s.signal()
			continue
		case <-s.wake:
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
			if len(resync) > 0 && !s.catchUpTopics(ctx, resync) {
				retry.Reset(resyncRetry)
			}
		}
		if len(s.out) == 0 {
			continue
		}
		if err := s.flush(w, rc); err != nil {
			return err
		}
		heartbeat.Reset(s.limits.Heartbeat)
	}
}

// flush writes pending frames in one write with a deadline, so a client
// that stopped reading cannot hold the goroutine.
func (s *Stream) flush(w http.ResponseWriter, rc *http.ResponseController) error {
	if len(s.out) == 0 {
		return nil
	}
	if err := rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("stream: set write deadline: %w", err)
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
