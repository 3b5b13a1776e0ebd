package stream

import (
	"context"
	"encoding/json"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/sse"
	"notify/read-api/internal/cursor"
	"notify/read-api/internal/hub"
)

// replayPage is how many history entries one read fetches.
const replayPage = 500

// Reasons sent with stream.reset.
const (
	reasonUnreadable = "unreadable cursor"
	reasonLost       = "history lost"    // the topic's epoch changed: Redis lost or expired it
	reasonTrimmed    = "history trimmed" // older than HISTORY_MAX_LEN or HISTORY_TTL
	reasonRewound    = "history rewound" // Redis came back with less than the client saw
)

// start sets the stream's positions from the client's cursor, replaying
// what it missed up to targets (the topics' positions now).
func (s *Stream) start(ctx context.Context, lastEventID string, targets []notification.Position) {
	if lastEventID == "" {
		copy(s.pos, targets)
		return
	}
	c, err := cursor.Parse(lastEventID)
	if err != nil {
		copy(s.pos, targets)
		s.appendReset(s.topics, reasonUnreadable)
		return
	}
	for i, k := range s.keys {
		if p, ok := c[k]; ok {
			s.pos[i] = p
		} else {
			s.pos[i] = targets[i] // a topic the cursor never covered starts now
		}
	}
	for i := range s.topics {
		if !s.catchUpTo(ctx, i, targets[i]) {
			s.markResync(i)
		}
	}
}

// handle writes a live event in order: duplicates (already replayed) are
// dropped and a gap is filled from history first.
func (s *Stream) handle(ctx context.Context, ev *hub.Event) {
	if s.appendLive(ev) {
		return
	}
	i := s.index(ev.Key)
	if !s.catchUpTo(ctx, i, notification.Position{Epoch: ev.Pos.Epoch, Seq: ev.Pos.Seq - 1}) {
		s.markResync(i) // history unreadable now: the resync will bring ev too
		return
	}
	s.appendEvent(i, ev.Pos, ev.Frame)
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
// It reports false if Redis could not be read; the topics stay marked.
func (s *Stream) catchUpTopics(ctx context.Context, idx []int) bool {
	topics := make([]string, len(idx))
	for j, i := range idx {
		topics[j] = s.topics[i]
	}
	targets, err := s.history.Positions(ctx, topics)
	ok := err == nil
	for j, i := range idx {
		if !ok || !s.catchUpTo(ctx, i, targets[j]) {
			s.markResync(i)
			ok = false
		}
	}
	return ok
}

// catchUpTo replays topic i from its position up to target. What history no
// longer holds is announced with stream.reset, never skipped silently. It
// reports false if history could not be read (the position stays where the
// last written event left it).
func (s *Stream) catchUpTo(ctx context.Context, i int, target notification.Position) bool {
	cur := s.pos[i]
	switch {
	case target.Zero() && cur.Zero():
		return true
	case cur.Epoch != target.Epoch && !cur.Zero():
		s.resetTopic(i, notification.Position{Epoch: target.Epoch}, reasonLost)
	case cur.Epoch == target.Epoch && (target.Seq < cur.Seq || target.Seq == cur.Seq && diverged(cur, target.Link)):
		s.resetTopic(i, target, reasonRewound)
		return true
	}
	s.pos[i].Epoch = target.Epoch
	for s.pos[i].Seq < target.Seq {
		after := s.pos[i].Seq
		msgs, err := s.history.Range(ctx, s.topics[i], target.Epoch, after, min(replayPage, int64(target.Seq-after)))
		if err != nil {
			s.log.Warn("history read failed", zap.Error(err))
			return false
		}
		if len(msgs) == 0 {
			s.resetTopic(i, target, reasonTrimmed)
			return true
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
	}
	return true
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
