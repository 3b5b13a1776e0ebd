package stream

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// replayBytes is how many bytes of history pages a pod holds at once by
// default: 32 full pages, a few times that in decoded messages and
// frames. It is larger than any one event (write-api takes bodies of at
// most 1 MiB).
const replayBytes = 32 * pageBytes

// Page sizes, in stored bytes: a replay's first page asks for little, as
// most resumes miss a few small events and the pod's budget then admits
// many at once; a longer replay reads on in full pages.
const (
	firstPageBytes = 8 << 10
	pageBytes      = 256 << 10
)

// replayPageEntries is the most events one page asks for.
const replayPageEntries = 500

// ReplayBudget bounds the history a pod's streams hold at once while they
// replay or fill a gap, in bytes. A stream makes room for a page before it
// reads it (pages are bounded in bytes before they are read), keeps what
// the page weighs, and gives that back once the client's socket took the
// page. Many streams resuming together then wait for each other instead
// of multiplying the pod's memory; a stream whose client does not read
// holds its page until its write times out and it is closed as slow.
type ReplayBudget struct {
	size  int64
	bytes *semaphore.Weighted
}

// NewReplayBudget allows size bytes of pages at once.
func NewReplayBudget(size int) *ReplayBudget {
	return &ReplayBudget{size: int64(size), bytes: semaphore.NewWeighted(int64(size))}
}

// acquire waits until n bytes are free.
func (b *ReplayBudget) acquire(ctx context.Context, n int) error {
	if int64(n) > b.size {
		return fmt.Errorf("stream: a history page of %d bytes is larger than the replay budget (%d)", n, b.size)
	}
	if err := b.bytes.Acquire(ctx, int64(n)); err != nil {
		return fmt.Errorf("stream: wait for the replay budget: %w", err)
	}
	return nil
}

func (b *ReplayBudget) release(n int) { b.bytes.Release(int64(n)) }
