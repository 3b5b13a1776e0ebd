// Package ingest is write-api's core: it validates notifications, gives
// them ids, and stores and publishes them, at most once per idempotency key.
package ingest

import (
	"encoding/json"
	"fmt"

	"notify/pkg/notification"
	"notify/pkg/problem"
)

// MaxTopics is how many topics one notification may name.
const MaxTopics = 100

// Request is one notification as a publisher sends it.
type Request struct {
	Topics []string `json:"topics"`
	Type   string   `json:"type"`
	// Key, when set, makes the notification each topic's state for that
	// key; with data null it removes the key. JSON null is no key.
	Key  *string         `json:"key"`
	Data json.RawMessage `json:"data"`
}

// StateKey is the request's state key, "" for none.
func (r *Request) StateKey() string {
	if r.Key == nil {
		return ""
	}
	return *r.Key
}

// Limits bound what one request may carry.
type Limits struct {
	MaxDataBytes int
	MaxBatch     int
}

// Normalize validates r and rewrites it in canonical form: duplicate
// topics removed, data compacted (so it fits on one SSE data line).
func (l Limits) Normalize(r *Request) error {
	if len(r.Topics) == 0 || len(r.Topics) > MaxTopics {
		return problem.New(problem.Invalid, "topics: want 1 to %d topics, got %d", MaxTopics, len(r.Topics))
	}
	topics, err := notification.NormalizeTopics(r.Topics)
	if err != nil {
		return problem.New(problem.Invalid, "topics: %v", err)
	}
	if err := notification.ValidateType(r.Type); err != nil {
		return problem.New(problem.Invalid, "type: %v", err)
	}
	if r.Key != nil {
		if err := notification.ValidateKey(*r.Key); err != nil {
			return problem.New(problem.Invalid, "key: %v", err)
		}
	}
	data, err := notification.CompactData(r.Data)
	if err != nil {
		return problem.New(problem.Invalid, "data: %v", err)
	}
	if len(data) > l.MaxDataBytes {
		return problem.New(problem.TooLarge, "data: %d bytes encoded, the limit is %d", len(data), l.MaxDataBytes)
	}
	r.Topics, r.Data = topics, data
	return nil
}

// NormalizeBatch validates every item; the first invalid one rejects the
// whole batch and the problem names its index.
func (l Limits) NormalizeBatch(items []Request) error {
	if len(items) == 0 || len(items) > l.MaxBatch {
		return problem.New(problem.Invalid, "notifications: want 1 to %d items, got %d", l.MaxBatch, len(items))
	}
	for i := range items {
		if err := l.Normalize(&items[i]); err != nil {
			pe := err.(*problem.Error)
			idx := i
			pe.Index = &idx
			pe.Detail = fmt.Sprintf("notifications[%d]: %s", i, pe.Detail)
			return pe
		}
	}
	return nil
}
