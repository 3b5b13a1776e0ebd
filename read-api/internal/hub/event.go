// Package hub is read-api's routing core: it maps topics to the streams
// connected to this pod, holds a Redis subscription for exactly the topics
// those streams need, and fans each message out without blocking.
package hub

import (
	"notify/pkg/notification"
	"notify/pkg/sse"
	"notify/read-api/internal/cursor"
)

// Event is a message ready for streams. It is built once per pod and
// shared by every recipient; only the per-stream id is written apart.
type Event struct {
	Topic string
	Key   cursor.TopicKey
	Pos   notification.Position
	Prev  uint32 // link of the topic's previous event (notification.Message)
	Frame []byte // "event: <type>\ndata: <envelope>\n\n"
}

// NewEvent encodes a message.
func NewEvent(m notification.Message) *Event {
	frame := make([]byte, 0, len(m.Type)+len(m.Envelope)+16)
	return &Event{Topic: m.Topic, Key: cursor.KeyOf(m.Topic), Pos: m.Pos, Prev: m.Prev, Frame: sse.AppendEvent(frame, m.Type, m.Envelope)}
}

// Member is a stream as the hub sees it. Its methods are called from the
// Redis read loop and must not block.
type Member interface {
	// Push queues an event for the stream.
	Push(*Event)
	// Resync tells the stream that topic may have missed events (the pod
	// lost its Redis connection) and must be checked against history.
	Resync(topic string)
}
