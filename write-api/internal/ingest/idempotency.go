package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/problem"
	"notify/pkg/redisbus"
)

// IdempotencyTTL is how long a key is remembered.
const IdempotencyTTL = 24 * time.Hour

// leaseTime is how long a first attempt owns its key before a retry may
// take over; it exceeds RedisTimeout so a live attempt is never overtaken.
const leaseTime = 3 * RedisTimeout

// Idempotency records, per publisher and key, the request's hash and the
// ids it was given, so a retry publishes nothing new.
type Idempotency struct {
	client redis.UniversalClient
	keys   redisbus.Keys
	now    func() time.Time
}

// NewIdempotency wraps a client.
func NewIdempotency(client redis.UniversalClient, keys redisbus.Keys) *Idempotency {
	return &Idempotency{client: client, keys: keys, now: time.Now}
}

type record struct {
	Hash  string   `json:"h"`
	IDs   []string `json:"ids"`
	Done  bool     `json:"done"`
	Lease int64    `json:"lease"` // unix ms until which the attempt owns the key
}

// Claim is the right to publish under a key, or the finished result.
type Claim struct {
	key string
	record
	// Retry is set when an earlier attempt failed after claiming the key:
	// it may have published some of the events already.
	Retry bool
}

// Begin claims key for a request with hash and fresh ids. It answers a
// finished claim for a replay, an error for a different body (422) or an
// attempt still in flight (409), and otherwise a claim to publish under.
func (s *Idempotency) Begin(ctx context.Context, publisher, key, hash string, ids []string) (*Claim, error) {
	c := &Claim{key: s.keys.Idempotency(publisher, key), record: record{Hash: hash, IDs: ids, Lease: s.now().Add(leaseTime).UnixMilli()}}
	raw, err := json.Marshal(c.record)
	if err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	// SET NX GET: claims the key, or returns what holds it, atomically.
	prev, err := s.client.SetArgs(ctx, c.key, raw, redis.SetArgs{Mode: "NX", Get: true, TTL: IdempotencyTTL}).Result()
	if errors.Is(err, redis.Nil) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: claim idempotency key: %w", err)
	}
	var old record
	if err := json.Unmarshal([]byte(prev), &old); err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	switch {
	case old.Hash != hash:
		return nil, problem.New(problem.IdempotencyMismatch, "Idempotency-Key was first used with a different request body")
	case old.Done:
		return &Claim{key: c.key, record: old}, nil
	case old.Lease > s.now().UnixMilli():
		return nil, &problem.Error{Code: problem.Conflict, Detail: "a request with this Idempotency-Key is still in progress", RetryAfter: time.Second}
	}
	// The earlier attempt failed: take over, keeping its ids so subscribers
	// can recognise anything it had already published.
	c.IDs, c.Retry = old.IDs, true
	if err := s.store(ctx, c, false); err != nil {
		return nil, err
	}
	return c, nil
}

// Finish marks the claim done, so later retries replay its ids.
func (s *Idempotency) Finish(ctx context.Context, c *Claim) error { return s.store(ctx, c, true) }

func (s *Idempotency) store(ctx context.Context, c *Claim, done bool) error {
	c.Done = done
	raw, err := json.Marshal(c.record)
	if err != nil {
		return fmt.Errorf("ingest: idempotency record: %w", err)
	}
	if err := s.client.SetArgs(ctx, c.key, raw, redis.SetArgs{KeepTTL: true}).Err(); err != nil {
		return fmt.Errorf("ingest: store idempotency record: %w", err)
	}
	return nil
}
