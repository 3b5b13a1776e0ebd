package redisbus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed replace.lua
var replaceLua string

var replaceScript = redis.NewScript(replaceLua)

// IdempotencyRecords stores write-api's idempotency records: one opaque
// value per publisher and key (see Keys.Idempotency), in the same Redis as
// history, with the same durability and failover behaviour. What a record
// means is the caller's business; this only makes each step atomic.
type IdempotencyRecords struct {
	client redis.UniversalClient
	keys   Keys
}

// NewIdempotencyRecords wraps a client.
func NewIdempotencyRecords(client redis.UniversalClient, keys Keys) *IdempotencyRecords {
	return &IdempotencyRecords{client: client, keys: keys}
}

// Claim stores record for ttl if the key holds nothing, and otherwise
// returns what it holds, in one step (SET NX GET). A command the client
// resent after a lost reply answers the record it stored itself, with
// claimed false.
func (r *IdempotencyRecords) Claim(ctx context.Context, publisher, key string, record []byte, ttl time.Duration) (held []byte, claimed bool, err error) {
	held, err = r.client.SetArgs(ctx, r.keys.Idempotency(publisher, key), record, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisbus: claim idempotency record: %w", err)
	}
	return held, false, nil
}

// Replace stores record in place of old, keeping the expiry, only if the
// key still holds old: of two callers that read the same record, one
// replaces it.
func (r *IdempotencyRecords) Replace(ctx context.Context, publisher, key string, old, record []byte) (bool, error) {
	n, err := replaceScript.Run(ctx, r.client, []string{r.keys.Idempotency(publisher, key)}, old, record).Int()
	if err != nil {
		return false, fmt.Errorf("redisbus: replace idempotency record: %w", err)
	}
	return n == 1, nil
}

// Update overwrites the record, keeping its expiry; a record that has
// expired is not recreated.
func (r *IdempotencyRecords) Update(ctx context.Context, publisher, key string, record []byte) error {
	err := r.client.SetArgs(ctx, r.keys.Idempotency(publisher, key), record, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisbus: update idempotency record: %w", err)
	}
	return nil
}
