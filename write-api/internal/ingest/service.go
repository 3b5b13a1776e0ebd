package ingest

import (
	"context"
	"fmt"
	"time"

	"notify/pkg/notification"
	"notify/pkg/problem"
	"notify/pkg/redisbus"
)

// Publisher stores and publishes events; redisbus.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, items []redisbus.Item) ([]notification.Position, error)
}

var _ Publisher = (*redisbus.Publisher)(nil)

// RedisTimeout bounds the Redis work of one request, so that an outage is
// answered with 503 well within the 3 s the contract allows.
const RedisTimeout = 2 * time.Second

// RetryAfter is what clients are told to wait when Redis is unavailable.
const RetryAfter = time.Second

// Service accepts notifications.
type Service struct {
	pub  Publisher
	idem *Idempotency
	now  func() time.Time
}

// NewService wires the publisher and the idempotency store.
func NewService(pub Publisher, idem *Idempotency) *Service {
	return &Service{pub: pub, idem: idem, now: time.Now}
}

// Accepted is the outcome of a publish: one id per notification.
type Accepted struct {
	IDs      []string
	Replayed bool // an earlier request with the same idempotency key did the work
}

// Call is one publish request, already normalized.
type Call struct {
	Publisher      string // the token's sub
	IdempotencyKey string // empty: none
	BodyHash       string // identifies the request for idempotency
	Items          []Request
}

// Publish stores and publishes the call's notifications and returns only
// once Redis holds every one of them.
func (s *Service) Publish(ctx context.Context, call Call) (Accepted, error) {
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()

	ids, err := newIDs(len(call.Items))
	if err != nil {
		return Accepted{}, err
	}
	var claim *Claim
	if call.IdempotencyKey != "" {
		claim, err = s.idem.Begin(ctx, call.Publisher, call.IdempotencyKey, call.BodyHash, ids)
		if err != nil {
			return Accepted{}, unavailable(err)
		}
		if claim.Done {
			return Accepted{IDs: claim.IDs, Replayed: true}, nil
		}
		ids = claim.IDs // an earlier failed attempt's ids: retries keep them
	}

	now := s.now().UTC()
	var items []redisbus.Item
	for i, req := range call.Items {
		for _, topic := range req.Topics {
			key := req.StateKey()
			env := notification.Envelope{ID: ids[i], Topic: topic, Type: req.Type, Time: now, Key: key, Data: req.Data}
			b, err := env.Marshal()
			if err != nil {
				return Accepted{}, problem.Wrap(problem.Invalid, err, "data cannot be encoded")
			}
			item := redisbus.Item{Topic: topic, Body: notification.EncodeBody(req.Type, b), Link: notification.LinkOf(ids[i]), Key: key, Remove: key != "" && string(req.Data) == "null"}
			if claim != nil && claim.Retry {
				item.OnceID = ids[i]
			}
			items = append(items, item)
		}
	}
	if _, err := s.pub.Publish(ctx, items); err != nil {
		return Accepted{}, unavailable(err)
	}
	if claim != nil {
		// Published but, if this fails, not recorded as done: a retry then
		// takes the claim over and publishes the same ids only where the
		// topic's history lacks them. Acknowledge either way.
		_ = s.idem.Finish(ctx, claim)
	}
	return Accepted{IDs: ids}, nil
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
	return &problem.Error{Code: problem.Unavailable, Detail: "Redis is unavailable; retry later", RetryAfter: RetryAfter, Err: err}
}
