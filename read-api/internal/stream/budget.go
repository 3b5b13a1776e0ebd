package stream

import (
	"context"
	"fmt"
)

// Replay budget defaults: a page aims at replayPageBytes of history, and a
// pod holds at most replayPages of them at once, whatever the number of
// streams replaying (about 8 MiB of history, a few times that in decoded
// messages and frames).
const (
	replayPageBytes = 256 << 10
	replayPages     = 32
)

// ReplayBudget bounds the history a pod's streams hold at once while they
// replay or fill a gap: each page is read only once a slot is free and
// keeps it until the client's socket took the page. Many streams resuming
// together then wait for each other instead of multiplying the pod's
// memory; a stream whose client does not read holds its slot until its
// write times out and it is closed as slow.
type ReplayBudget struct {
	slots     chan struct{}
	pageBytes int
}

// NewReplayBudget allows pages pages of about pageBytes each at once.
func NewReplayBudget(pages, pageBytes int) *ReplayBudget {
	return &ReplayBudget{slots: make(chan struct{}, pages), pageBytes: pageBytes}
}

// acquire waits for a free page slot.
func (b *ReplayBudget) acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stream: wait for the replay budget: %w", ctx.Err())
	}
}

func (b *ReplayBudget) release() { <-b.slots }

// InFlight is how many pages are held now.
func (b *ReplayBudget) InFlight() int { return len(b.slots) }

// pageCount is how many entries the next page reads, given the largest
// frame of the previous page (0 before the first): enough to fill a page,
// at least one, at most replayMaxEntries.
func (b *ReplayBudget) pageCount(largest int) int64 {
	if largest <= 0 {
		return replayFirstEntries
	}
	return int64(min(max(b.pageBytes/largest, 1), replayMaxEntries))
}

// A first page reads few entries: their size is not known yet, and one can
// be as large as the write API allows. Later pages are sized from it.
const (
	replayFirstEntries = 8
	replayMaxEntries   = 500
)
