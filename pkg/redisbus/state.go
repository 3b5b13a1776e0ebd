package redisbus

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

//go:embed state.lua
var stateLua string

var stateScript = redis.NewScript(stateLua)

// A state page holds at most this many keys, and stops after the entry
// that passes this many bytes: a reader holds one page at a time, however
// large STATE_MAX_KEYS and MAX_DATA_BYTES make a state.
const (
	statePageKeys  = 500
	statePageBytes = 1 << 20
)

// State reads topics' keyed state.
type State struct {
	client redis.UniversalClient
	keys   Keys
	pages  coalescer[stateQuery, StatePage]
}

// StatePage is one page of a topic's state.
type StatePage struct {
	// Pos is the topic's position when the page was read (zero for a
	// topic without events).
	Pos notification.Position
	// Entries are the keys' latest notifications, least recently updated
	// first; each Pos.Seq is the seq of that notification.
	Entries []notification.Message
	// Next is the seq to read on after, 0 at the end of the state.
	Next uint64
}

type stateQuery struct {
	topic       string
	after, upTo uint64 // upTo 0: up to the topic's position now
}

// NewState wraps a client.
func NewState(client redis.UniversalClient, keys Keys) *State {
	s := &State{client: client, keys: keys}
	s.pages.run = s.readPages
	return s
}

// Read reads topic's state as of one position and returns that position;
// fn gets the entries page by page, least recently updated first, and may
// not keep them (they may be shared with concurrent readers).
//
// The first page and the position are read in one atomic step, so a state
// that fits one page is exactly the state at that position. A larger one
// is read on in seq order, bounded by that position: a key updated after
// the first page moves past the position and is not read again, and its
// update, past the position, is what a stream delivers after the
// snapshot. So the pages folded with every event after the position give
// the topic's state, no key is sent twice and no event after the position
// is in a page; a removal after the position arrives as its event.
func (s *State) Read(ctx context.Context, topic string, fn func([]notification.Message) error) (notification.Position, error) {
	p, err := s.page(ctx, stateQuery{topic: topic})
	if err != nil {
		return notification.Position{}, err
	}
	pos := p.Pos
	for {
		if len(p.Entries) > 0 {
			if err := fn(p.Entries); err != nil {
				return pos, err
			}
		}
		if p.Next == 0 {
			return pos, nil
		}
		if p, err = s.page(ctx, stateQuery{topic: topic, after: p.Next, upTo: pos.Seq}); err != nil {
			return pos, err
		}
		if p.Pos.Epoch != pos.Epoch || p.Pos.Seq < pos.Seq || p.Pos.Seq == pos.Seq && p.Pos.Link != pos.Link {
			return pos, fmt.Errorf("redisbus: read state of %s: %w", topic, notification.ErrStateMoved)
		}
	}
}

func (s *State) page(ctx context.Context, q stateQuery) (StatePage, error) {
	out, err := s.pages.do(ctx, []stateQuery{q})
	if err != nil {
		return StatePage{}, fmt.Errorf("redisbus: read state of %s: %w", q.topic, err)
	}
	return out[0], nil
}

// readPages runs the state script for each query in one pipeline.
// Identical queries share one call: streams opening together on a topic
// ask for the same first page.
func (s *State) readPages(ctx context.Context, qs []stateQuery) ([]StatePage, []error) {
	first := make(map[stateQuery]int, len(qs))
	var uniq []int
	for i, q := range qs {
		if _, dup := first[q]; !dup {
			first[q] = i
			uniq = append(uniq, i)
		}
	}
	cmds := make([]*redis.Cmd, len(qs))
	for round := 0; len(uniq) > 0; round++ {
		pipe := s.client.Pipeline()
		for _, i := range uniq {
			q := qs[i]
			upTo := "+"
			if q.upTo > 0 {
				upTo = strconv.FormatUint(q.upTo, 10)
			}
			cmds[i] = stateScript.EvalSha(ctx, pipe, []string{s.keys.Meta(q.topic), s.keys.State(q.topic), s.keys.StateOrder(q.topic)},
				strconv.FormatUint(q.after, 10), upTo, statePageKeys, statePageBytes)
		}
		_, _ = pipe.Exec(ctx) // errors stay on each command
		var again []int
		for _, i := range uniq {
			if isNoScript(cmds[i].Err()) && round == 0 {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			if err := stateScript.Load(ctx, s.client).Err(); err != nil {
				break // the commands keep their NOSCRIPT errors
			}
		}
		uniq = again
	}
	out := make([]StatePage, len(qs))
	errs := make([]error, len(qs))
	for i, q := range qs {
		if j := first[q]; j != i {
			out[i], errs[i] = out[j], errs[j]
			continue
		}
		out[i], errs[i] = decodeStatePage(q.topic, cmds[i])
	}
	return out, errs
}

// decodeStatePage reads the script's reply.
func decodeStatePage(topic string, cmd *redis.Cmd) (StatePage, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return StatePage{}, err
	}
	if len(vals) < 4 || len(vals)%2 != 0 {
		return StatePage{}, fmt.Errorf("%w: state reply of %d values", notification.ErrBadMessage, len(vals))
	}
	str := func(v any) string { s, _ := v.(string); return s }
	var p StatePage
	if epoch := str(vals[0]); epoch != "" {
		if p.Pos, err = notification.ParsePosition(epoch, str(vals[1])); err != nil {
			return StatePage{}, err
		}
		if p.Pos.Link, err = notification.ParseLink(str(vals[2])); err != nil {
			return StatePage{}, err
		}
	}
	if p.Next, err = strconv.ParseUint(str(vals[3]), 10, 64); err != nil {
		return StatePage{}, fmt.Errorf("%w: state next %q", notification.ErrBadMessage, str(vals[3]))
	}
	p.Entries = make([]notification.Message, 0, (len(vals)-4)/2)
	for i := 4; i < len(vals); i += 2 {
		seq, err := strconv.ParseUint(str(vals[i]), 10, 64)
		if err != nil {
			return StatePage{}, fmt.Errorf("%w: state seq %q", notification.ErrBadMessage, str(vals[i]))
		}
		typ, env, err := notification.DecodeBody(str(vals[i+1]))
		if err != nil {
			return StatePage{}, err
		}
		p.Entries = append(p.Entries, notification.Message{Topic: topic, Pos: notification.Position{Epoch: p.Pos.Epoch, Seq: seq}, Type: typ, Envelope: env})
	}
	return p, nil
}
