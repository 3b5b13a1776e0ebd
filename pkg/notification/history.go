package notification

import (
	"context"
	"errors"
)

// HistoryPage is one page of a topic's history, newest first, read in one
// atomic step with the topic's position.
type HistoryPage struct {
	Head   Position  // the topic's position (zero: no events)
	Events []Message // newest first, at most the limit asked for
	More   bool      // older events are stored
	// BeforeLink is the link of the event at the page's upper bound, when
	// one was asked for and it is stored (0 otherwise): the reader checks
	// it against its cursor to tell a rewritten history.
	BeforeLink uint32
}

// RangeQuery asks for the next page of a topic's history, for a replay:
// the events with seq > After, oldest first, at most Count of them and at
// most MaxBytes of stored bytes. The page's size is bounded before it is
// read, so a reader can make room for it first.
type RangeQuery struct {
	Topic    string
	Epoch    uint64 // the epoch the reader compared (Range does not check it)
	After    uint64
	Count    int64
	MaxBytes int
}

// RangePage is what a RangeQuery read.
type RangePage struct {
	Events []Message
	// Need is set, with no Events, when the next event alone is larger than
	// MaxBytes: it is that event's size, to ask again with.
	Need int
}

// ErrStateMoved is wrapped when a topic's history was lost or rewritten
// while its state was being read in pages: what was read belongs to no
// single position, and the read may start over.
var ErrStateMoved = errors.New("state changed epoch while it was read")

// Subscription is a subscription to topics sent to the bus and not yet
// confirmed. Sending and confirming are apart so a caller can order its
// subscribe and unsubscribe writes under its own lock without holding it
// for a round trip.
type Subscription interface {
	// Wait returns once every topic is confirmed: from then on every
	// publish to them is delivered.
	Wait(ctx context.Context) error
}
