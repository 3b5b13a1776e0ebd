package notification

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is where an event sits in its topic's history. Seq counts
// events of the topic from 1 within one Epoch; a new epoch starts whenever
// the topic's counter is created anew (first publish, expiry, or Redis
// losing its data), so a cursor from an old epoch is detectably stale.
//
// Link chains a topic's events: each event has a 32-bit link (from its
// notification id) and records the link of the event before it (Prev in
// Message). A reader that knows the link at its position can tell that the
// history it continues from is the one it saw, even when a Redis failover
// lost the tail and new events took the same sequence numbers. Zero means
// unknown (nothing seen yet).
type Position struct {
	Epoch uint64
	Seq   uint64
	Link  uint32
}

// Zero reports whether p marks a topic that has never had an event.
func (p Position) Zero() bool { return p.Epoch == 0 && p.Seq == 0 }

// ErrBadMessage is wrapped when a pub/sub or history message is malformed.
var ErrBadMessage = errors.New("malformed bus message")

// Message is one published event as it travels from Redis to a read pod.
type Message struct {
	Topic    string
	Pos      Position
	Prev     uint32 // link of the topic's previous event; 0 for the first of an epoch
	Type     string
	Envelope []byte // the data line: Envelope JSON, one line
}

// LinkOf derives an event's link from its notification id: the last eight
// hex digits (random bits in a UUIDv7), never zero.
func LinkOf(id string) uint32 {
	var l uint32
	if len(id) >= 8 {
		if v, err := strconv.ParseUint(id[len(id)-8:], 16, 32); err == nil {
			l = uint32(v)
		}
	}
	return max(l, 1)
}

// FormatLink is the wire form of a link: eight hex digits, "-" for zero.
func FormatLink(l uint32) string {
	if l == 0 {
		return "-"
	}
	return fmt.Sprintf("%08x", l)
}

// ParseLink is the inverse of FormatLink.
func ParseLink(s string) (uint32, error) {
	if s == "-" || s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: link %q", ErrBadMessage, clip(s))
	}
	return uint32(v), nil
}

// EncodeBody is what the write side stores in history and hands to the
// publish script: "<type> <envelope JSON>". The script prefixes the
// position, giving the pub/sub payload "<epoch> <seq> <type> <json>".
func EncodeBody(typ string, envelope []byte) string {
	var b strings.Builder
	b.Grow(len(typ) + 1 + len(envelope))
	b.WriteString(typ)
	b.WriteByte(' ')
	b.Write(envelope)
	return b.String()
}

// DecodeBody splits a history body into type and envelope.
func DecodeBody(body string) (typ string, envelope []byte, err error) {
	typ, env, ok := strings.Cut(body, " ")
	if !ok || typ == "" || env == "" {
		return "", nil, fmt.Errorf("%w: body without type", ErrBadMessage)
	}
	return typ, []byte(env), nil
}

// DecodePublished parses a pub/sub payload
// "<epoch> <seq> <link> <prev> <type> <json>".
func DecodePublished(topic, payload string) (Message, error) {
	var f [4]string
	rest := payload
	for i := range f {
		var ok bool
		if f[i], rest, ok = strings.Cut(rest, " "); !ok {
			return Message{}, fmt.Errorf("%w: want <epoch> <seq> <link> <prev> <body>", ErrBadMessage)
		}
	}
	pos, err := ParsePosition(f[0], f[1])
	if err != nil {
		return Message{}, err
	}
	if pos.Link, err = ParseLink(f[2]); err != nil {
		return Message{}, err
	}
	prev, err := ParseLink(f[3])
	if err != nil {
		return Message{}, err
	}
	typ, env, err := DecodeBody(rest)
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: topic, Pos: pos, Prev: prev, Type: typ, Envelope: env}, nil
}

// EncodePublished is the payload DecodePublished reads (the publish
// script builds the same string).
func EncodePublished(m Message) string {
	return fmt.Sprintf("%d %d %s %s %s", m.Pos.Epoch, m.Pos.Seq, FormatLink(m.Pos.Link), FormatLink(m.Prev), EncodeBody(m.Type, m.Envelope))
}

// ParsePosition parses decimal epoch and seq strings as Redis returns them.
func ParsePosition(epoch, seq string) (Position, error) {
	e, err := strconv.ParseUint(epoch, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("%w: epoch %q", ErrBadMessage, clip(epoch))
	}
	s, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("%w: seq %q", ErrBadMessage, clip(seq))
	}
	return Position{Epoch: e, Seq: s}, nil
}
