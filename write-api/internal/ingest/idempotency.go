package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// IdempotencyRecords keeps one opaque record per publisher and key, each
// step atomic. It may run a command twice when a reply is lost, which
// Claim's caller must recognise.
type IdempotencyRecords interface {
	// Claim stores record for ttl if the key holds none, and otherwise
	// returns the record it holds (claimed false).
	Claim(ctx context.Context, publisher, key string, record []byte, ttl time.Duration) (held []byte, claimed bool, err error)
	// Replace stores record in place of old, keeping old's expiry, only
	// if the key still holds old; it reports whether it did.
	Replace(ctx context.Context, publisher, key string, old, record []byte) (bool, error)
	// Update overwrites the key's record, keeping its expiry; an expired
	// record is not recreated.
	Update(ctx context.Context, publisher, key string, record []byte) error
}

// Idempotency records, per publisher and key, the request's hash, the ids
// and time it was given, and whether it was answered, so a retry publishes
// nothing new.
type Idempotency struct {
	records IdempotencyRecords
	now     func() time.Time
}

// NewIdempotency keeps its records in records.
func NewIdempotency(records IdempotencyRecords) *Idempotency {
	return &Idempotency{records: records, now: time.Now}
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
	publisher, key string
	record
}

// Begin claims key for a request with hash, fresh ids and time. It answers
// a finished claim for a replay, an error for a different body (422) or an
// attempt still within its lease (409 with Retry-After), and otherwise a
// claim to publish under: new, or taken over from an attempt that failed
// (its ids and time kept, so the events it stored are recognised).
func (s *Idempotency) Begin(ctx context.Context, publisher, key, hash string, ids []string, at time.Time) (*Claim, error) {
	now := s.now()
	c := &Claim{publisher: publisher, key: key, record: record{Hash: hash, IDs: ids, Time: at, Lease: now.Add(leaseTime).UnixMilli()}}
	raw, err := json.Marshal(c.record)
	if err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	prev, claimed, err := s.records.Claim(ctx, publisher, key, raw, IdempotencyTTL)
	if err != nil {
		return nil, err
	}
	if claimed || bytes.Equal(prev, raw) { // the second: our own claim, sent twice
		return c, nil
	}
	var old record
	if err := json.Unmarshal(prev, &old); err != nil {
		return nil, fmt.Errorf("ingest: idempotency record: %w", err)
	}
	switch {
	case old.Hash != hash:
		return nil, problem.New(problem.IdempotencyMismatch, "Idempotency-Key was first used with a different request body")
	case old.Done:
		return &Claim{publisher: publisher, key: key, record: old}, nil
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
	// Only if the record is still the one read: of two retries that find
	// a lapsed attempt, one takes over.
	won, err := s.records.Replace(ctx, publisher, key, prev, raw)
	if err != nil {
		return nil, err
	}
	if !won { // another retry took over, or the attempt finished, meanwhile
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
	return s.records.Update(ctx, c.publisher, c.key, raw)
}
