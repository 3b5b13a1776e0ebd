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
// bounds a page's bytes, and records how many pages are read at once.
type pagedHistory struct {
	*history
	pageEntries           int64
	mu                    sync.Mutex
	pages                 int
	inFlight, maxInFlight int
}

func (p *pagedHistory) Range(ctx context.Context, topic string, epoch, after uint64, count int64) ([]notification.Message, error) {
	p.mu.Lock()
	p.pages++
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.mu.Unlock()
	time.Sleep(time.Millisecond) // a round trip: another stream may ask meanwhile
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	return p.history.Range(ctx, topic, epoch, after, min(count, p.pageEntries))
}

// Two streams resume 199 events each through a pod budget of one page:
// history is read a page at a time, one page in the whole pod at once, and
// each stream gets everything in order.
func TestReplayReadsBoundedPagesWithinThePodBudget(t *testing.T) {
	t.Parallel()
	h := &pagedHistory{history: newHistory(), pageEntries: 4}
	want := make([]string, 0, 199)
	for seq := uint64(1); seq <= 200; seq++ {
		h.add("a:1", 7, seq)
		if seq > 1 {
			want = append(want, fmt.Sprintf("a:1/7/%d", seq))
		}
	}
	l := limits()
	l.Replay = NewReplayBudget(1)
	from := cursorAt([]string{"a:1"}, notification.Position{Epoch: 7, Seq: 1, Link: link(0, 7, 1)})
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
	if h.maxInFlight != 1 {
		t.Errorf("%d pages read at once, want 1 (the pod's budget)", h.maxInFlight)
	}
	if h.pages < 2*199/4 {
		t.Errorf("%d pages read, want one per 4 events of each stream", h.pages)
	}
	if n := l.Replay.InFlight(); n != 0 {
		t.Errorf("%d pages still held after the replays", n)
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
