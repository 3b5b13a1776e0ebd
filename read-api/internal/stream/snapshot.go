package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"notify/pkg/notification"
	"notify/pkg/sse"
	"notify/read-api/internal/cursor"
)

// StateReader reads a topic's keyed state at one position, page by page.
type StateReader interface {
	Read(ctx context.Context, topic string, fn func([]notification.Message) error) (notification.Position, error)
}

// snapshotFlushBytes is how much of a snapshot is gathered before it is
// written: a large state goes out as it is read, never whole in memory.
const snapshotFlushBytes = 16 << 10

// startSnapshot starts a stream opened with snapshot=true, in the order
// the client relies on: any stream.reset (without id), the snapshot of
// every topic that needs one (events without id), the replay of the
// topics the cursor resumes (with ids), then stream.synced with the cursor
// at the snapshots. No id a client could reconnect with goes out before
// every snapshot is complete.
//
// The hub holds the stream's subscriptions already: a topic's snapshot and
// its position are read together, and the position plays the role of a
// cursor for that topic, so live events up to it are dropped and those
// after it are delivered once.
func (s *Stream) startSnapshot(ctx context.Context, st StateReader, lastEventID string, targets []notification.Position) error {
	need, err := s.planSnapshot(ctx, lastEventID, targets)
	if err != nil {
		return err
	}
	for i, topic := range s.topics {
		if !need[i] {
			continue
		}
		pos, err := st.Read(ctx, topic, func(ms []notification.Message) error {
			for _, m := range ms {
				s.out = sse.AppendEvent(s.out, m.Type, m.Envelope)
				if len(s.out) >= snapshotFlushBytes {
					// Written as it is read, under the backlog limit and
					// the write deadline: a slow reader is a slow client.
					if err := s.flushPage(); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("stream: snapshot of %s: %w", topic, err)
		}
		s.pos[i] = pos
	}
	for i := range s.topics {
		if need[i] {
			continue
		}
		if err := s.catchUpTo(ctx, i, targets[i]); errors.Is(err, errHistory) {
			s.markResync(i)
		} else if err != nil {
			return err
		}
	}
	data, _ := json.Marshal(struct {
		Topics []string `json:"topics"`
	}{s.topics})
	s.appendControl("stream.synced", data)
	return nil
}

// planSnapshot sets the positions of the topics the cursor resumes, sends
// stream.reset for those it covers but cannot resume, and returns which
// topics need a snapshot: those, and those the cursor does not cover.
func (s *Stream) planSnapshot(ctx context.Context, lastEventID string, targets []notification.Position) ([]bool, error) {
	need := make([]bool, len(s.topics))
	if lastEventID == "" {
		for i := range need {
			need[i] = true
		}
		return need, nil
	}
	c, err := cursor.Parse(lastEventID)
	if err != nil {
		for i := range need {
			need[i] = true
		}
		s.appendBareReset(s.topics, reasonUnreadable)
		return need, nil
	}
	reset := map[string][]string{} // reason → topics
	var reasons []string
	for i, k := range s.keys {
		p, ok := c[k]
		if !ok {
			need[i] = true
			continue
		}
		s.pos[i] = p
		reason, err := s.resumable(ctx, i, targets[i])
		if err != nil {
			return nil, err
		}
		if reason != "" {
			need[i] = true
			if _, seen := reset[reason]; !seen {
				reasons = append(reasons, reason)
			}
			reset[reason] = append(reset[reason], s.topics[i])
		}
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		s.appendBareReset(reset[r], r)
	}
	return need, nil
}

// resumable tells whether topic i can be replayed exactly from its
// position up to target, or why not: the same checks the replay makes,
// done before anything is sent, since resets go first.
func (s *Stream) resumable(ctx context.Context, i int, target notification.Position) (string, error) {
	cur := s.pos[i]
	switch {
	case target.Zero() && cur.Zero():
		return "", nil
	case cur.Epoch != target.Epoch && !cur.Zero():
		return reasonLost, nil
	case target.Seq < cur.Seq || target.Seq == cur.Seq && diverged(cur, target.Link):
		return reasonRewound, nil
	case target.Seq == cur.Seq:
		return "", nil
	}
	msgs, held, err := s.readPage(ctx, notification.RangeQuery{Topic: s.topics[i], Epoch: target.Epoch, After: cur.Seq, Count: 1, MaxBytes: firstPageBytes})
	if err != nil {
		return "", fmt.Errorf("stream: read history of %s: %w", s.topics[i], err)
	}
	s.limits.Replay.release(held) // only the first event's position and link are kept
	switch {
	case len(msgs) == 0 || msgs[0].Pos.Seq != cur.Seq+1:
		return reasonTrimmed, nil
	case diverged(cur, msgs[0].Prev):
		return reasonRewound, nil
	}
	return "", nil
}

// appendBareReset appends stream.reset without an id: with a snapshot to
// follow, the stream has no position to give yet.
func (s *Stream) appendBareReset(topics []string, reason string) {
	data, _ := json.Marshal(resetData{Topics: topics, Reason: reason})
	s.out = sse.AppendEvent(s.out, "stream.reset", data)
}
