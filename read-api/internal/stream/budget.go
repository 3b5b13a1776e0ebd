package stream

import (
	"context"
	"fmt"
)

// replayPages is how many history pages a pod holds at once by default:
// with pages of about 256 KiB (redisbus.RangeBytes), about 8 MiB of
// history, a few times that in decoded messages and frames.
const replayPages = 32

// replayPageEntries is the most events one page asks for; History bounds a
// page's bytes.
const replayPageEntries = 500

// ReplayBudget bounds the history a pod's streams hold at once while they
// replay or fill a gap: each page is read only once a slot is free and
// keeps it until the client's socket took the page. Many streams resuming
// together then wait for each other instead of multiplying the pod's
// memory; a stream whose client does not read holds its slot until its
// write times out and it is closed as slow.
type ReplayBudget struct {
	slots chan struct{}
}

// NewReplayBudget allows pages pages at once.
func NewReplayBudget(pages int) *ReplayBudget {
	return &ReplayBudget{slots: make(chan struct{}, pages)}
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
