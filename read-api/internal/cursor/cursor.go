// Package cursor encodes the position of a stream across all its topics
// into the opaque SSE event id, and decodes it on resume.
//
// Format: base64url (no padding) of a version byte followed by, per topic,
// the topic's 64-bit FNV-1a hash (8 bytes), its epoch and seq as uvarints
// and the link of the event at seq (4 bytes). Hashing keeps ids short
// however long topic names are.
package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"notify/pkg/notification"
)

const version = 2

// ErrUnreadable is returned for a cursor this server cannot decode.
var ErrUnreadable = errors.New("unreadable cursor")

// TopicKey identifies a topic inside a cursor.
type TopicKey uint64

// KeyOf hashes a topic.
func KeyOf(topic string) TopicKey {
	h := fnv.New64a()
	_, _ = h.Write([]byte(topic))
	return TopicKey(h.Sum64())
}

// Cursor maps topics to the position a client has seen up to.
type Cursor map[TopicKey]notification.Position

// Append encodes positions of keys (parallel slices) onto dst; scratch is
// reused between calls to avoid allocating per event.
func Append(dst, scratch []byte, keys []TopicKey, pos []notification.Position) (out, scratchOut []byte) {
	scratch = append(scratch[:0], version)
	for i, k := range keys {
		scratch = binary.BigEndian.AppendUint64(scratch, uint64(k))
		scratch = binary.AppendUvarint(scratch, pos[i].Epoch)
		scratch = binary.AppendUvarint(scratch, pos[i].Seq)
		scratch = binary.BigEndian.AppendUint32(scratch, pos[i].Link)
	}
	return base64.RawURLEncoding.AppendEncode(dst, scratch), scratch
}

// Of is the cursor covering one topic at pos: what the history and state
// reads hand out.
func Of(topic string, pos notification.Position) string {
	out, _ := Append(nil, nil, []TopicKey{KeyOf(topic)}, []notification.Position{pos})
	return string(out)
}

// Parse decodes a cursor.
func Parse(s string) (Cursor, error) {
	if len(s) > 8192 {
		return nil, fmt.Errorf("%w: too long", ErrUnreadable)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 || raw[0] != version {
		return nil, fmt.Errorf("%w: not a cursor of this server", ErrUnreadable)
	}
	c := Cursor{}
	for b := raw[1:]; len(b) > 0; {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated", ErrUnreadable)
		}
		k := TopicKey(binary.BigEndian.Uint64(b))
		b = b[8:]
		epoch, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad epoch", ErrUnreadable)
		}
		b = b[n:]
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad seq", ErrUnreadable)
		}
		b = b[n:]
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated link", ErrUnreadable)
		}
		c[k] = notification.Position{Epoch: epoch, Seq: seq, Link: binary.BigEndian.Uint32(b)}
		b = b[4:]
	}
	return c, nil
}
