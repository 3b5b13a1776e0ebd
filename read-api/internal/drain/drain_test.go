package drain

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// stream registers with d and, once told to stop, records when and whether
// the pod was draining by then, and releases itself.
type stream struct {
	stoppedAt time.Time
	draining  bool
}

func register(d *Drain, n int, wg *sync.WaitGroup) []*stream {
	out := make([]*stream, n)
	for i := range out {
		s := &stream{}
		out[i] = s
		stop, release := d.Register(nil)
		wg.Go(func() {
			<-stop
			s.stoppedAt, s.draining = time.Now(), d.Draining()
			release()
		})
	}
	return out
}

// A drain ends its streams as a trickle spread over the window, not all at
// once, and all of them within it; the pod reports draining from the start.
func TestDrainSpreadsClosesOverWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n, within = 40, 2 * time.Second
		d := New()
		var wg sync.WaitGroup
		streams := register(d, n, &wg)
		if d.Draining() || d.Open() != n {
			t.Fatalf("before the drain: Draining() = %v, Open() = %d; want false, %d", d.Draining(), d.Open(), n)
		}

		start := time.Now()
		d.Start(t.Context(), within)
		returned := time.Since(start)
		wg.Wait()

		if d.Open() != 0 {
			t.Fatalf("Start returned with %d streams open", d.Open())
		}
		if returned > within {
			t.Errorf("Start took %s, want at most %s", returned, within)
		}
		perInstant := map[time.Duration]int{}
		var last time.Duration
		for i, s := range streams {
			if !s.draining {
				t.Errorf("stream %d was stopped while Draining() was false", i)
			}
			at := s.stoppedAt.Sub(start)
			perInstant[at]++
			last = max(last, at)
		}
		if last > within {
			t.Errorf("last stream stopped %s into a %s drain", last, within)
		}
		if last < within/2 {
			t.Errorf("all streams stopped within %s of a %s drain: not spread out", last, within)
		}
		for at, k := range perInstant {
			if k > n/4 {
				t.Errorf("%d of %d streams stopped at once (%s into the drain)", k, n, at)
			}
		}
	})
}

// When the drain's context ends early, every stream still open is told to
// stop at once and Start returns.
func TestDrainContextEndStopsTheRest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		d := New()
		var wg sync.WaitGroup
		streams := register(d, n, &wg)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()

		start := time.Now()
		d.Start(ctx, 20*time.Second) // a window far longer than ctx
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Errorf("Start returned %s after its context ended at 300ms", took)
		}
		wg.Wait()
		late := 0
		for _, s := range streams {
			if s.stoppedAt.Sub(start) >= 300*time.Millisecond {
				late++
			}
		}
		if late == 0 || late == n {
			t.Errorf("%d of %d streams stopped when the context ended, want the rest after a gradual start", late, n)
		}
	})
}

// A handful of streams is spread over the window too, not closed in the
// first ticks: three streams in a 10 s drain stop at 0 s, 2.7 s and 5.3 s.
func TestDrainSpreadsFewStreams(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		var wg sync.WaitGroup
		streams := register(d, 3, &wg)
		start := time.Now()
		d.Start(t.Context(), 10*time.Second)
		wg.Wait()
		var last time.Duration
		for _, s := range streams {
			last = max(last, s.stoppedAt.Sub(start))
		}
		if last < 5*time.Second || last > 8*time.Second {
			t.Errorf("the last of 3 streams stopped %s into a 10 s drain, want between 5 s and 8 s", last)
		}
	})
}

// Streams that wait on something other than the channel are told through
// onStop, once, when the drain closes them.
func TestDrainCallsOnStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		calls := 0
		stop, release := d.Register(func() { calls++ })
		go func() { <-stop; release() }()
		d.Start(t.Context(), time.Second)
		if calls != 1 {
			t.Fatalf("onStop called %d times, want 1", calls)
		}
	})
}
