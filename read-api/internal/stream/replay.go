package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/sse"
	"notify/read-api/internal/cursor"
	"notify/read-api/internal/hub"
)

// Reasons sent with stream.reset.
const (
	reasonUnreadable = "unreadable cursor"
	reasonLost       = "history lost"    // the topic's epoch changed: Redis lost or expired it
	reasonTrimmed    = "history trimmed" // older than HISTORY_MAX_LEN or HISTORY_TTL
	reasonRewound    = "history rewound" // Redis came back with less than the client saw
)

// errHistory is a history read that failed: the topic stays marked for a
// resync, retried later, and the stream goes on.
var errHistory = errors.New("stream: history unavailable")

// start sets the stream's positions from the client's cursor, replaying
// what it missed up to targets (the topics' positions now). It fails only
// if the client could not take the replay.
func (s *Stream) start(ctx context.Context, lastEventID string, targets []notification.Position) error {
	if lastEventID == "" {
		copy(s.pos, targets)
		return nil
	}
	c, err := cursor.Parse(lastEventID)
	if err != nil {
		copy(s.pos, targets)
		s.appendReset(s.topics, reasonUnreadable)
		return nil
	}
	for i, k := range s.keys {
		if p, ok := c[k]; ok {
			s.pos[i] = p
		} else {
			s.pos[i] = targets[i] // a topic the cursor never covered starts now
		}
	}
	for i := range s.topics {
		if err := s.catchUpTo(ctx, i, targets[i]); errors.Is(err, errHistory) {
			s.markResync(i)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// fillGap appends ev, a live event appendLive could not place, after
// filling the gap before it from history. If history cannot be read now,
// the topic is marked for a resync, which brings ev too, and fillGap
// reports marked. It fails only if the client could not take the gap's
// replay.
func (s *Stream) fillGap(ctx context.Context, ev *hub.Event) (marked bool, err error) {
	i := s.index(ev.Key)
	err = s.catchUpTo(ctx, i, notification.Position{Epoch: ev.Pos.Epoch, Seq: ev.Pos.Seq - 1})
	if errors.Is(err, errHistory) {
		s.markResync(i)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	s.appendEvent(i, ev.Pos, ev.Frame)
	return false, nil
}

// appendLive handles ev if that needs no history: ev continues its topic,
// repeats an event already sent (dropped) or is not the stream's. It
// reports false, changing nothing, when a gap must be filled first.
func (s *Stream) appendLive(ev *hub.Event) bool {
	i := s.index(ev.Key)
	if i < 0 {
		return true
	}
	cur := s.pos[i]
	switch {
	case cur.Epoch != ev.Pos.Epoch && !cur.Zero():
		return false
	case cur.Epoch == ev.Pos.Epoch && ev.Pos.Seq <= cur.Seq:
		return true
	case ev.Pos.Seq != cur.Seq+1:
		return false
	}
	if diverged(cur, ev.Prev) {
		s.resetTopic(i, cur, reasonRewound)
	}
	s.appendEvent(i, ev.Pos, ev.Frame)
	return true
}

// catchUpTopics brings the given topics up to their current positions.
// It reports whether Redis could be read (unread topics stay marked), and
// fails only if the client could not take the replay.
func (s *Stream) catchUpTopics(ctx context.Context, idx []int) (bool, error) {
	topics := make([]string, len(idx))
	for j, i := range idx {
		topics[j] = s.topics[i]
	}
	targets, err := s.history.Positions(ctx, topics)
	ok := err == nil
	for j, i := range idx {
		if !ok {
			s.markResync(i)
			continue
		}
		if err := s.catchUpTo(ctx, i, targets[j]); errors.Is(err, errHistory) {
			s.markResync(i)
			ok = false
		} else if err != nil {
			return false, err
		}
	}
	return ok, nil
}

// catchUpTo replays topic i from its position up to target, one page at a
// time (replayPage). What history no longer holds is announced with
// stream.reset, never skipped silently. It fails with errHistory if
// history could not be read (the position stays where the last written
// event left it), or with the write's error.
func (s *Stream) catchUpTo(ctx context.Context, i int, target notification.Position) error {
	cur := s.pos[i]
	switch {
	case target.Zero() && cur.Zero():
		return nil
	case cur.Epoch != target.Epoch && !cur.Zero():
		s.resetTopic(i, notification.Position{Epoch: target.Epoch}, reasonLost)
	case cur.Epoch == target.Epoch && (target.Seq < cur.Seq || target.Seq == cur.Seq && diverged(cur, target.Link)):
		s.resetTopic(i, target, reasonRewound)
		return nil
	}
	s.pos[i].Epoch = target.Epoch
	size := firstPageBytes
	for s.pos[i].Seq < target.Seq {
		if err := s.replayPage(ctx, i, target, size); err != nil {
			return err
		}
		size = pageBytes // a replay longer than a page reads on in full pages
	}
	return nil
}

// replayPage reads the next page of topic i's history up to target, of at
// most size bytes (or the next event alone, if it is larger), and writes
// it to the client before it returns: a stream holds one page of history
// at a time, counted in its backlog limit, and the pod holds at most its
// replay budget's bytes at once.
func (s *Stream) replayPage(ctx context.Context, i int, target notification.Position, size int) error {
	after := s.pos[i].Seq
	msgs, held, err := s.readPage(ctx, notification.RangeQuery{
		Topic: s.topics[i], Epoch: target.Epoch, After: after,
		Count: min(replayPageEntries, int64(target.Seq-after)), MaxBytes: size,
	})
	if err != nil {
		return err
	}
	defer s.limits.Replay.release(held)
	if len(msgs) == 0 {
		s.resetTopic(i, target, reasonTrimmed)
		return s.flushPage()
	}
	switch {
	case msgs[0].Pos.Seq != after+1:
		s.resetTopic(i, notification.Position{Epoch: target.Epoch, Seq: msgs[0].Pos.Seq - 1}, reasonTrimmed)
	case diverged(s.pos[i], msgs[0].Prev):
		s.resetTopic(i, s.pos[i], reasonRewound)
	}
	for _, m := range msgs {
		if m.Pos.Seq > target.Seq {
			break
		}
		s.appendEvent(i, m.Pos, sse.AppendEvent(nil, m.Type, m.Envelope))
	}
	return s.flushPage()
}

// readPage reads the page q asks for once the replay budget has room for
// q.MaxBytes, and keeps only what the page weighs: it returns the events
// and the bytes the caller must release. An event larger than q.MaxBytes
// is read alone, once there is room for it. Failures wrap errHistory.
func (s *Stream) readPage(ctx context.Context, q notification.RangeQuery) ([]notification.Message, int, error) {
	budget := s.limits.Replay
	for {
		if err := budget.acquire(ctx, q.MaxBytes); err != nil {
			if ctx.Err() == nil { // not the caller giving up: an event larger than the whole budget
				s.log.Warn("history page does not fit the replay budget", zap.Error(err))
			}
			return nil, 0, fmt.Errorf("%w: %w", errHistory, err)
		}
		page, err := s.history.Range(ctx, q)
		switch {
		case err != nil:
			budget.release(q.MaxBytes)
			s.log.Warn("history read failed", zap.Error(err))
			return nil, 0, fmt.Errorf("%w: %w", errHistory, err)
		case page.Need > 0 && len(page.Events) == 0:
			budget.release(q.MaxBytes)
			q.MaxBytes = page.Need
			continue
		}
		held := min(q.MaxBytes, weight(page.Events))
		budget.release(q.MaxBytes - held)
		return page.Events, held, nil
	}
}

// weight is what a page holds of the budget: its events' stored bytes,
// which History bounded by the query's MaxBytes.
func weight(msgs []notification.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Type) + len(m.Envelope)
	}
	return n
}

// flushPage writes a replayed page. While it waits for the client, the
// page counts against the stream's backlog limit with the live events
// queued meanwhile: past it, the stream ends as slow.
func (s *Stream) flushPage() error {
	if !s.holdPage(len(s.out)) {
		return ErrSlow
	}
	err := s.flush()
	s.holdPage(0)
	return err
}

// holdPage records the bytes of the page being written; it reports false
// if the stream is over its backlog limit.
func (s *Stream) holdPage(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued+n > s.limits.MaxQueueBytes {
		s.overflow, s.queue, s.queued = true, nil, 0
	}
	s.paged = n
	return !s.overflow
}

// diverged reports whether an event whose predecessor has link prev does
// not continue from cur: Redis lost the tail the client saw (a failover)
// and new events took its sequence numbers.
func diverged(cur notification.Position, prev uint32) bool {
	return cur.Link != 0 && prev != 0 && prev != cur.Link
}

func (s *Stream) markResync(i int) {
	s.mu.Lock()
	s.resync[i] = true
	s.mu.Unlock()
}

func (s *Stream) resetTopic(i int, pos notification.Position, reason string) {
	s.pos[i] = pos
	s.appendReset(s.topics[i:i+1], reason)
}

// appendEvent records pos as seen and appends the event with the cursor
// that now covers every topic of the stream.
func (s *Stream) appendEvent(i int, pos notification.Position, frame []byte) {
	s.pos[i] = pos
	s.appendID()
	s.out = append(s.out, frame...)
}

func (s *Stream) appendID() {
	s.out = append(s.out, "id: "...)
	s.out, s.scratch = cursor.Append(s.out, s.scratch, s.keys, s.pos)
	s.out = append(s.out, '\n')
}

type resetData struct {
	Topics []string `json:"topics"`
	Reason string   `json:"reason"`
}

func (s *Stream) appendReset(topics []string, reason string) {
	s.resetsSent++
	s.limits.Stats.countReset(reason)
	data, _ := json.Marshal(resetData{Topics: topics, Reason: reason})
	s.appendControl("stream.reset", data)
}

// appendControl appends a server event (stream.*) carrying the current cursor.
func (s *Stream) appendControl(event string, data []byte) {
	s.appendID()
	s.out = sse.AppendEvent(s.out, event, data)
}
