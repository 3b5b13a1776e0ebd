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
