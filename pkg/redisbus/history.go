package redisbus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

// RangeBytes bounds the events one Range returns: about this many bytes of
// history (always at least one event), however large the events are, so
// that what a reader holds per page is known before it reads.
const RangeBytes = 256 << 10

//go:embed range.lua
var rangeLua string

// History reads topics' positions and recorded events for replay.
type History struct {
	client    redis.UniversalClient
	keys      Keys
	positions coalescer[string, notification.Position]
	ranges    coalescer[rangeQuery, []notification.Message]
}

// rangeQuery is one Range call.
type rangeQuery struct {
	topic        string
	epoch, after uint64
	count        int64
}

// NewHistory wraps a client.
func NewHistory(client redis.UniversalClient, keys Keys) *History {
	h := &History{client: client, keys: keys}
	h.positions.run = h.readPositions
	h.ranges.run = h.readRanges
	return h
}

// Positions returns each topic's latest position (zero for a topic that has
// no history) in one pipelined round trip, shared with concurrent callers
// (coalesce.go): in a reconnect storm thousands of streams read at once,
// and one round trip each queued them for the client's connections past
// the stream's join timeout.
func (h *History) Positions(ctx context.Context, topics []string) ([]notification.Position, error) {
	pos, err := h.positions.do(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("redisbus: read positions: %w", err)
	}
	return pos, nil
}

// readPositions reads the topics' meta hashes in one pipeline.
func (h *History) readPositions(ctx context.Context, topics []string) ([]notification.Position, []error) {
	cmds := make([]*redis.SliceCmd, len(topics))
	_, _ = h.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, t := range topics {
			cmds[i] = pipe.HMGet(ctx, h.keys.Meta(t), "epoch", "seq", "link")
		}
		return nil
	}) // errors stay on each command
	out := make([]notification.Position, len(topics))
	errs := make([]error, len(topics))
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			errs[i] = err
			continue
		}
		epoch, _ := vals[0].(string)
		seq, _ := vals[1].(string)
		link, _ := vals[2].(string)
		if epoch == "" || seq == "" {
			continue
		}
		if out[i], err = notification.ParsePosition(epoch, seq); err == nil {
			out[i].Link, err = notification.ParseLink(link)
		}
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", topics[i], err)
		}
	}
	return out, errs
}

// Range returns up to count events of topic with seq > after, oldest first,
// and no more than about RangeBytes of them (at least one): callers read
// on from the last event returned. It does not check the epoch: callers
// compare Positions first. Concurrent
// calls share pipelines like Positions; the messages may be shared with
// other callers: read them, do not change them.
func (h *History) Range(ctx context.Context, topic string, epoch, after uint64, count int64) ([]notification.Message, error) {
	out, err := h.ranges.do(ctx, []rangeQuery{{topic: topic, epoch: epoch, after: after, count: count}})
	if err != nil {
		return nil, fmt.Errorf("redisbus: read history of %s: %w", topic, err)
	}
	return out[0], nil
}

// readRanges reads histories in one pipeline. Identical queries share one
// XRANGE and its decoded messages: after a pod goes away, the streams of a
// topic come back with the same cursor and ask for the same events.
func (h *History) readRanges(ctx context.Context, qs []rangeQuery) ([][]notification.Message, []error) {
	first := make(map[rangeQuery]int, len(qs))
	cmds := make([]*redis.Cmd, len(qs))
	_, _ = h.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, q := range qs {
			if _, dup := first[q]; dup {
				continue
			}
			first[q] = i
			cmds[i] = pipe.Eval(ctx, rangeLua, []string{h.keys.History(q.topic)}, q.after, q.count, RangeBytes)
		}
		return nil
	}) // errors stay on each command
	out := make([][]notification.Message, len(qs))
	errs := make([]error, len(qs))
	for i, q := range qs {
		if j := first[q]; j != i { // a duplicate of an earlier query
			out[i], errs[i] = out[j], errs[j]
			continue
		}
		reply, err := cmds[i].Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			errs[i] = err
			continue
		}
		entries, err := xMessages(reply)
		if err != nil {
			errs[i] = err
			continue
		}
		out[i], errs[i] = decodeRange(q, entries)
	}
	return out, errs
}

// decodeRange turns history entries into messages.
func decodeRange(q rangeQuery, entries []redis.XMessage) ([]notification.Message, error) {
	out := make([]notification.Message, 0, len(entries))
	for _, e := range entries {
		seq, err := seqOf(e.ID)
		if err != nil {
			return nil, err
		}
		body, _ := e.Values["b"].(string)
		l, _ := e.Values["l"].(string)
		p, _ := e.Values["p"].(string)
		typ, env, err := notification.DecodeBody(body)
		var link, prev uint32
		if err == nil {
			link, err = notification.ParseLink(l)
		}
		if err == nil {
			prev, err = notification.ParseLink(p)
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", seq, err)
		}
		out = append(out, notification.Message{Topic: q.topic, Pos: notification.Position{Epoch: q.epoch, Seq: seq, Link: link}, Prev: prev, Type: typ, Envelope: env})
	}
	return out, nil
}

// xMessages reads range.lua's reply: stream entries as XRANGE gives them.
func xMessages(reply any) ([]redis.XMessage, error) {
	list, _ := reply.([]any)
	out := make([]redis.XMessage, 0, len(list))
	for _, e := range list {
		entry, ok := e.([]any)
		if !ok || len(entry) != 2 {
			return nil, fmt.Errorf("%w: history entry %v", notification.ErrBadMessage, e)
		}
		id, _ := entry[0].(string)
		fields, _ := entry[1].([]any)
		values := make(map[string]any, len(fields)/2)
		for j := 0; j+1 < len(fields); j += 2 {
			if k, ok := fields[j].(string); ok {
				values[k] = fields[j+1]
			}
		}
		out = append(out, redis.XMessage{ID: id, Values: values})
	}
	return out, nil
}

// seqOf parses a history entry id "0-<seq>".
func seqOf(id string) (uint64, error) {
	if len(id) < 3 || id[:2] != "0-" {
		return 0, fmt.Errorf("%w: entry id %q", notification.ErrBadMessage, id)
	}
	seq, err := strconv.ParseUint(id[2:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: entry id %q", notification.ErrBadMessage, id)
	}
	return seq, nil
}
