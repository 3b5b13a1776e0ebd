package stream

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"notify/pkg/sse"
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
// before the response starts; Begin calls it if the caller did not.
func (s *Stream) Open(ctx context.Context) error {
	targets, err := s.history.Positions(ctx, s.topics)
	if err != nil {
		return fmt.Errorf("stream: read positions: %w", err)
	}
	s.targets = targets
	return nil
}

// Begin writes the response head and replays what the client missed, on
// the caller's goroutine. The caller has joined the hub already, so
// nothing published from now on can be missed: events pushed meanwhile
// wait in the queue for the first round (Detach, then Start).
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
