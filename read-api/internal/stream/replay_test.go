package stream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/sseclient"
)

// pagedHistory returns pages of at most pageEntries events, as Redis
// bounds a page's bytes, and records the bytes the streams made room for
// in the pod's budget while reads were on their way.
type pagedHistory struct {
	*history
	pageEntries           int64
	mu                    sync.Mutex
	pages                 int
	reserved, maxReserved int
}

func (p *pagedHistory) Range(ctx context.Context, q notification.RangeQuery) (notification.RangePage, error) {
	p.mu.Lock()
	p.pages++
	p.reserved += q.MaxBytes
	p.maxReserved = max(p.maxReserved, p.reserved)
	p.mu.Unlock()
	time.Sleep(time.Millisecond) // a round trip: another stream may ask meanwhile
	defer func() {
		p.mu.Lock()
		p.reserved -= q.MaxBytes
		p.mu.Unlock()
	}()
	q.Count = min(q.Count, p.pageEntries)
	return p.history.Range(ctx, q)
}

// idle reports whether nothing holds any of b.
func (b *ReplayBudget) idle() bool {
	if !b.bytes.TryAcquire(b.size) {
		return false
	}
	b.bytes.Release(b.size)
	return true
}

// resumeAfterFirst gives topic a:1 of h events 1 to n in epoch 7 and
// returns what a stream resuming after the first must receive, and its
// cursor.
func resumeAfterFirst(h *history, n uint64) (want []string, from string) {
	for seq := uint64(1); seq <= n; seq++ {
		h.add("a:1", 7, seq)
		if seq > 1 {
			want = append(want, fmt.Sprintf("a:1/7/%d", seq))
		}
	}
	return want, cursorAt([]string{"a:1"}, notification.Position{Epoch: 7, Seq: 1, Link: link(0, 7, 1)})
}

// Two streams resume 199 events each through a pod budget of one full
// page: history is read a page at a time, never more than the budget's
// bytes of pages at once in the whole pod, and each stream gets
// everything in order.
func TestReplayReadsBoundedPagesWithinThePodBudget(t *testing.T) {
	t.Parallel()
	h := &pagedHistory{history: newHistory(), pageEntries: 4}
	want, from := resumeAfterFirst(h.history, 200)
	l := limits()
	l.Replay = NewReplayBudget(pageBytes)
	var wg sync.WaitGroup
	recs := []*recorder{newRecorder(), newRecorder()}
	for _, rec := range recs {
		wg.Go(func() {
			s := New([]string{"a:1"}, h, l, zap.NewNop())
			if err := s.Begin(t.Context(), rec, Options{LastEventID: from, Expiry: time.Now().Add(time.Hour), MaxAge: time.Hour}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, rec := range recs {
		evs, err := sseclient.ParseBytes(rec.bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := datas(evs); !slices.Equal(got, want) {
			t.Errorf("stream %d got %d events %v…, want %d", i, len(got), got[:min(len(got), 3)], len(want))
		}
	}
	if h.maxReserved > pageBytes {
		t.Errorf("pages of %d bytes read at once, want at most %d (the pod's budget)", h.maxReserved, pageBytes)
	}
	if h.pages < 2*199/4 {
		t.Errorf("%d pages read, want one per 4 events of each stream", h.pages)
	}
	if !l.Replay.idle() {
		t.Error("pages still held after the replays")
	}
}

// A replay whose events are each larger than its first page reads each
// one alone once the budget has room for it: the stream gets everything in
// order and gives the budget back.
func TestReplayReadsEventsLargerThanAPage(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.pad = 3 * firstPageBytes
	want, from := resumeAfterFirst(h, 30)
	l := limits()
	l.Replay = NewReplayBudget(pageBytes)
	rec := newRecorder()
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	if err := s.Begin(t.Context(), rec, Options{LastEventID: from, Expiry: time.Now().Add(time.Hour), MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	evs, err := sseclient.ParseBytes(rec.bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := datas(evs); !slices.Equal(got, want) {
		t.Errorf("got %d events %v…, want %d", len(got), got[:min(len(got), 3)], len(want))
	}
	if !l.Replay.idle() {
		t.Error("pages still held after the replay")
	}
}

// stallingWriter blocks its second write until released: a client that
// took the first page and stopped reading.
type stallingWriter struct {
	header  http.Header
	writes  int
	stalled chan struct{}
	release chan struct{}
}

func (w *stallingWriter) Header() http.Header { return w.header }
func (w *stallingWriter) WriteHeader(int)     {}
func (w *stallingWriter) Flush()              {}
func (w *stallingWriter) Write(b []byte) (int, error) {
	if w.writes++; w.writes == 2 {
		close(w.stalled)
		<-w.release
	}
	return len(b), nil
}

// While a replay page waits for the client, live events queue against the
// same backlog limit as the page: past it the stream ends as slow.
func TestReplayPageCountsAgainstTheBacklogLimit(t *testing.T) {
	t.Parallel()
	h := &pagedHistory{history: newHistory(), pageEntries: 5}
	for seq := uint64(1); seq <= 100; seq++ {
		h.add("a:1", 7, seq)
	}
	l := limits()
	l.MaxQueueBytes = 1024
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	w := &stallingWriter{header: http.Header{}, stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	from := cursorAt([]string{"a:1"}, notification.Position{Epoch: 7, Seq: 1, Link: link(0, 7, 1)})
	go func() {
		done <- s.Begin(t.Context(), w, Options{LastEventID: from, Expiry: time.Now().Add(time.Hour), MaxAge: time.Hour})
	}()
	select {
	case <-w.stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the replay never reached its second page")
	}
	for seq := uint64(101); seq <= 130; seq++ { // about 1.5 KiB with the page: over the limit
		s.Push(h.add("a:1", 7, seq))
	}
	close(w.release)
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlow) {
			t.Fatalf("Begin = %v, want ErrSlow", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the replay did not end")
	}
}

// A page larger than the whole budget is refused at once: waiting would
// never end, since the budget can never hold it.
func TestBudgetRefusesAPageLargerThanItself(t *testing.T) {
	t.Parallel()
	b := NewReplayBudget(100)
	if err := b.acquire(t.Context(), 101); err == nil {
		t.Fatal("acquired 101 bytes of a 100-byte budget")
	}
	if err := b.acquire(t.Context(), 100); err != nil {
		t.Fatalf("the whole budget: %v", err)
	}
	b.release(100)
	if !b.idle() {
		t.Error("budget held after release")
	}
}
