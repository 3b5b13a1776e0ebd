package redisbus

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

//go:embed range.lua
var rangeLua string

// History reads topics' positions and recorded events for replay.
type History struct {
	client    redis.UniversalClient
	keys      Keys
	positions coalescer[string, notification.Position]
	ranges    coalescer[notification.RangeQuery, notification.RangePage]
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

// Range reads a page of history (notification.RangeQuery): it does not
// check the epoch, callers compare Positions first. Concurrent calls
// share pipelines like Positions; the messages may be shared with other
// callers: read them, do not change them.
func (h *History) Range(ctx context.Context, q notification.RangeQuery) (notification.RangePage, error) {
	out, err := h.ranges.do(ctx, []notification.RangeQuery{q})
	if err != nil {
		return notification.RangePage{}, fmt.Errorf("redisbus: read history of %s: %w", q.Topic, err)
	}
	return out[0], nil
}

// readRanges reads histories in one pipeline. Identical queries share one
// script call and its decoded messages: after a pod goes away, the streams
// of a topic come back with the same cursor and ask for the same events.
func (h *History) readRanges(ctx context.Context, qs []notification.RangeQuery) ([]notification.RangePage, []error) {
	first := make(map[notification.RangeQuery]int, len(qs))
	cmds := make([]*redis.Cmd, len(qs))
	_, _ = h.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, q := range qs {
			if _, dup := first[q]; dup {
				continue
			}
			first[q] = i
			cmds[i] = pipe.Eval(ctx, rangeLua, []string{h.keys.History(q.Topic)}, q.After, q.Count, q.MaxBytes)
		}
		return nil
	}) // errors stay on each command
	out := make([]notification.RangePage, len(qs))
	errs := make([]error, len(qs))
	for i, q := range qs {
		if j := first[q]; j != i { // a duplicate of an earlier query
			out[i], errs[i] = out[j], errs[j]
			continue
		}
		reply, err := cmds[i].Result()
		if err != nil {
			errs[i] = err
			continue
		}
		entries, need, err := rangeReply(reply)
		if err != nil {
			errs[i] = err
			continue
		}
		out[i].Need = need
		out[i].Events, errs[i] = decodeRange(q.Topic, q.Epoch, entries)
	}
	return out, errs
}

// decodeRange turns topic's history entries of epoch into messages.
func decodeRange(topic string, epoch uint64, entries []redis.XMessage) ([]notification.Message, error) {
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
		out = append(out, notification.Message{Topic: topic, Pos: notification.Position{Epoch: epoch, Seq: seq, Link: link}, Prev: prev, Type: typ, Envelope: env})
	}
	return out, nil
}

// rangeReply reads range.lua's reply: {entries as XRANGE gives them, need}.
func rangeReply(reply any) ([]redis.XMessage, int, error) {
	parts, _ := reply.([]any)
	if len(parts) != 2 {
		return nil, 0, fmt.Errorf("%w: history page %v", notification.ErrBadMessage, reply)
	}
	need, _ := parts[1].(int64)
	entries, err := xMessages(parts[0])
	return entries, int(need), err
}

// xMessages reads stream entries as XRANGE gives them.
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
