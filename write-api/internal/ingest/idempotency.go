package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/problem"
)

// IdempotencyTTL is how long a key is remembered.
const IdempotencyTTL = 24 * time.Hour

// leaseTime is how long an attempt owns its key before a retry may take
// over. It outlasts the attempt's own RedisTimeout, so a retry does not
// race an attempt that is still running; safety does not rest on it (the
// bus stores each event at most once per id, see Bus), only the answer: a
// retry within the lease is told 409 and when to come back.
const leaseTime = RedisTimeout + RetryAfter

// Idempotency records, per publisher and key, the request's hash, the ids
// and time it was given, and whether it was answered, so a retry publishes
// nothing new. The records live in the same Redis as history, with the
// same durability and failover behaviour.
type Idempotency struct {
	client redis.UniversalClient
	keys   IdempotencyKeys
	now    func() time.Time
}

// IdempotencyKeys names the Redis key of a publisher's idempotency record,
// in the key layout the bus shares with it.
type IdempotencyKeys interface {
	Idempotency(publisher, key string) string
}

// NewIdempotency wraps a client.
func NewIdempotency(client redis.UniversalClient, keys IdempotencyKeys) *Idempotency {
	return &Idempotency{client: client, keys: keys, now: time.Now}
}

type record struct {
	Hash  string    `json:"h"`
	IDs   []string  `json:"ids"`
	Time  time.Time `json:"t"` // the envelopes' time, kept by retries
	Done  bool      `json:"done"`
	Lease int64     `json:"lease"` // unix ms until which the attempt owns the key
}

// Claim is the right to publish under a key, or the finished result.
type Claim struct {
	key string
	record
}

// takeover replaces a record only if it is still the one read, so of two
// retries that find a lapsed attempt only one takes over.
var takeover = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0`)

// Begin claims key for a request with hash, fresh ids and time. It answers
// a finished claim for a replay, an error for a different body (422) or an
// attempt still within its lease (409 with Retry-After), and otherwise a
// claim to publish under: new, or taken over from an attempt that failed
// (its ids and time kept, so the events it stored are recognised).
func (s *Idempotency) Begin(ctx context.Context, publisher, key, hash string, ids []string, at time.Time) (*Claim, error) {
	now := s.now()
	c := &Claim{key: s.keys.Idempotency(publisher, key), record: record{Hash: hash, IDs: ids, Time: at, Lease: now.Add(leaseTime).UnixMilli()}}
	raw, err := json.Marshal(c.record)
	if err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	// SET NX GET: claims the key, or returns what holds it, atomically.
	prev, err := s.client.SetArgs(ctx, c.key, raw, redis.SetArgs{Mode: "NX", Get: true, TTL: IdempotencyTTL}).Result()
	if errors.Is(err, redis.Nil) || (err == nil && prev == string(raw)) { // the second: our own SET, sent twice
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
	case old.Lease > now.UnixMilli():
		return nil, inProgress(time.UnixMilli(old.Lease).Sub(now))
	}
	c.IDs = old.IDs
	if !old.Time.IsZero() {
		c.Time = old.Time
	}
	if raw, err = json.Marshal(c.record); err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	won, err := takeover.Run(ctx, s.client, []string{c.key}, prev, raw).Int()
	if err != nil {
		return nil, fmt.Errorf("ingest: take over idempotency key: %w", err)
	}
	if won == 0 { // another retry took over, or the attempt finished, meanwhile
		return nil, inProgress(RetryAfter)
	}
	return c, nil
}

func inProgress(wait time.Duration) error {
	return &problem.Error{Code: problem.Conflict, Detail: "a request with this Idempotency-Key is still in progress; retry after the time in Retry-After", RetryAfter: max(wait, time.Second)}
}

// Finish marks the claim done, so later retries replay its ids. A record
// that has expired meanwhile is not recreated.
func (s *Idempotency) Finish(ctx context.Context, c *Claim) error {
	c.Done = true
	raw, err := json.Marshal(c.record)
	if err != nil {
		return fmt.Errorf("ingest: idempotency record: %w", err)
	}
	if err := s.client.SetArgs(ctx, c.key, raw, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("ingest: store idempotency record: %w", err)
	}
	return nil
}
