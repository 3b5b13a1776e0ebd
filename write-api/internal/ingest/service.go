package ingest

import (
	"context"
	"fmt"
	"time"

	"notify/pkg/notification"
	"notify/pkg/problem"
)

// Bus stores each event in its topic's history and publishes it. An event
// with Once set is stored at most once per topic for that id, however
// often it is sent (a retry, or an attempt that timed out but still ran),
// and is then reported Existed.
type Bus interface {
	Publish(ctx context.Context, events []notification.Event) ([]notification.Stored, error)
}

// RedisTimeout bounds the Redis work of one request, so that an outage is
// answered with 503 well within the 3 s docs/api.md promises.
const RedisTimeout = 2 * time.Second

// RetryAfter is what clients are told to wait when Redis is unavailable.
const RetryAfter = time.Second

// Service accepts notifications.
type Service struct {
	bus  Bus
	idem *Idempotency
	now  func() time.Time
}

// NewService wires the bus and the idempotency store.
func NewService(bus Bus, idem *Idempotency) *Service {
	return &Service{bus: bus, idem: idem, now: time.Now}
}

// Accepted is the outcome of a publish: one id per notification.
type Accepted struct {
	IDs []string
	// Replayed: an earlier request with the same idempotency key had
	// published everything; this one published nothing.
	Replayed bool
}

// Call is one publish request, already normalized.
type Call struct {
	Publisher      string // the token's sub
	IdempotencyKey string // empty: none
	BodyHash       string // identifies the request for idempotency
	Items          []Request
}

// Publish stores and publishes the call's notifications and returns only
// once Redis holds every one of them. An error from Redis means the outcome
// is unknown (some events may be stored): only a retry with the same
// idempotency key is safe, and it never publishes an event twice.
func (s *Service) Publish(ctx context.Context, call Call) (Accepted, error) {
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()

	ids, err := newIDs(len(call.Items))
	if err != nil {
		return Accepted{}, err
	}
	at := s.now().UTC()
	var claim *Claim
	if call.IdempotencyKey != "" {
		claim, err = s.idem.Begin(ctx, call.Publisher, call.IdempotencyKey, call.BodyHash, ids, at)
		if err != nil {
			return Accepted{}, unavailable(err)
		}
		if claim.Done {
			return Accepted{IDs: claim.IDs, Replayed: true}, nil
		}
		ids, at = claim.IDs, claim.Time // a lapsed attempt's: its stored events are recognised
	}

	events, err := eventsOf(call.Items, ids, at, claim != nil)
	if err != nil {
		return Accepted{}, err
	}
	stored, err := s.bus.Publish(ctx, events)
	if err != nil {
		return Accepted{}, unavailable(err)
	}
	replayed := claim != nil && len(stored) > 0
	for _, st := range stored {
		replayed = replayed && st.Existed
	}
	if claim != nil {
		// If this fails the record stays unfinished: a retry takes it over
		// once the lease lapses and finds every event stored. Acknowledge
		// either way.
		_ = s.idem.Finish(ctx, claim)
	}
	return Accepted{IDs: ids, Replayed: replayed}, nil
}

// eventsOf makes one event per notification and topic; once marks them
// with their ids, so each is stored at most once.
func eventsOf(items []Request, ids []string, at time.Time, once bool) ([]notification.Event, error) {
	var events []notification.Event
	for i, req := range items {
		for _, topic := range req.Topics {
			key := req.StateKey()
			env := notification.Envelope{ID: ids[i], Topic: topic, Type: req.Type, Time: at, Key: key, Data: req.Data}
			b, err := env.Marshal()
			if err != nil {
				return nil, problem.Wrap(problem.Invalid, err, "data cannot be encoded")
			}
			ev := notification.Event{Topic: topic, Body: notification.EncodeBody(req.Type, b), Link: notification.LinkOf(ids[i]),
				Key: key, Remove: key != "" && string(req.Data) == "null"}
			if once {
				ev.Once = ids[i]
			}
			events = append(events, ev)
		}
	}
	return events, nil
}

func newIDs(n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		id, err := notification.NewID()
		if err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		ids[i] = id
	}
	return ids, nil
}

func unavailable(err error) error {
	if pe, ok := err.(*problem.Error); ok {
		return pe
	}
	return &problem.Error{Code: problem.Unavailable, Detail: "Redis is unavailable; the outcome is unknown: retry with the same Idempotency-Key", RetryAfter: RetryAfter, Err: err}
}
