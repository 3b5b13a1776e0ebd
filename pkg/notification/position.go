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
type Position struct {
	Epoch uint64
	Seq   uint64
}

// Zero reports whether p marks a topic that has never had an event.
func (p Position) Zero() bool { return p.Epoch == 0 && p.Seq == 0 }

// ErrBadMessage is wrapped when a pub/sub or history message is malformed.
var ErrBadMessage = errors.New("malformed bus message")

// Message is one published event as it travels from Redis to a read pod.
type Message struct {
	Topic    string
	Pos      Position
	Type     string
	Envelope []byte // the data line: Envelope JSON, one line
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

// DecodePublished parses a pub/sub payload "<epoch> <seq> <type> <json>".
func DecodePublished(topic, payload string) (Message, error) {
	epoch, rest, ok1 := strings.Cut(payload, " ")
	seq, body, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return Message{}, fmt.Errorf("%w: want <epoch> <seq> <body>", ErrBadMessage)
	}
	pos, err := ParsePosition(epoch, seq)
	if err != nil {
		return Message{}, err
	}
	typ, env, err := DecodeBody(body)
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: topic, Pos: pos, Type: typ, Envelope: env}, nil
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
