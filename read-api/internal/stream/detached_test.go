package stream

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/sseclient"
	"notify/pkg/testwait"
)

// until polls cond for up to 5 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 5*time.Second, what, cond)
}

func received(t *testing.T, rec *recorder) []string {
	t.Helper()
	evs, err := sseclient.ParseBytes(rec.bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return datas(evs)
}

func endsWith(t *testing.T, ended <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ended:
		select {
		case again := <-ended:
			t.Fatalf("%s: onEnd called twice (%v, then %v)", what, err, again)
		case <-time.After(50 * time.Millisecond):
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the stream did not end", what)
		return nil
	}
}

// Events pushed before and after Start arrive in order, each wake running
// a round on the run queue or on a goroutine that leaves afterwards; the
// client's hang-up ends the stream with nil and later pushes write nothing.
func TestDetachedDeliversAndEndsOnHangup(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		s := New([]string{"a:1"}, h, podLimits(t), zap.NewNop())
		w, rec := m.client()
		ctx, hangUp := context.WithCancel(t.Context())
		opts := begin(t, ctx, s, w, Options{})
		s.Push(h.add("a:1", 7, 1)) // between Begin and Start: taken by the first round
		d, ended := detach(ctx, s, opts)
		for seq := uint64(2); seq <= 50; seq++ {
			s.Push(h.add("a:1", 7, seq))
		}
		until(t, "50 events", func() bool { return len(received(t, rec)) == 50 })
		if got := received(t, rec); !slices.Equal(got, want("a:1", 1, 50)) {
			t.Fatalf("got %v", got)
		}
		hangUp()
		if err := endsWith(t, ended, "hangup"); err != nil {
			t.Fatalf("onEnd(%v), want nil after a hang-up", err)
		}
		n := len(rec.bytes())
		s.Push(h.add("a:1", 7, 51))
		d.Wake()
		time.Sleep(50 * time.Millisecond)
		if len(rec.bytes()) != n {
			t.Fatal("an ended stream wrote again")
		}
	})
}

// A resting detached stream holds no goroutine: 200 of them leave the
// goroutine count where it was.
func TestDetachedRestingHoldsNoGoroutine(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := newHistory()
			l := podLimits(t)
			base := runtime.NumGoroutine()
			ctx, hangUp := context.WithCancel(t.Context())
			ends := make([]<-chan error, 200)
			for i := range ends {
				w, _ := m.client()
				_, ends[i] = start(t, ctx, New([]string{"a:1"}, h, l, zap.NewNop()), w, Options{})
			}
			until(t, "the first rounds to finish", func() bool { return runtime.NumGoroutine() <= base+5 })
			hangUp()
			for i := range ends {
				select {
				case err := <-ends[i]:
					if err != nil {
						t.Fatalf("onEnd(%v) after a hang-up", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a stream did not end after its hang-up")
				}
			}
		})
	}
}

// The timer runs the heartbeat, the token's expiry and the maximum age;
// the drain ends the stream as soon as it wakes it.
func TestDetachedDeadlinesAndDrain(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, m mode, l Limits, opts Options) (*Stream, *recorder, <-chan error) {
		t.Helper()
		s := New([]string{"a:1"}, newHistory(), l, zap.NewNop())
		w, rec := m.client()
		_, ended := start(t, t.Context(), s, w, opts)
		return s, rec, ended
	}
	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		eachMode(t, func(t *testing.T, m mode) {
			l := podLimits(t)
			l.Heartbeat = 50 * time.Millisecond
			ctx, hangUp := context.WithCancel(t.Context())
			s := New([]string{"a:1"}, newHistory(), l, zap.NewNop())
			w, rec := m.client()
			_, ended := start(t, ctx, s, w, Options{})
			until(t, "three heartbeats", func() bool { return bytes.Count(rec.bytes(), []byte(":\n")) >= 3 })
			hangUp()
			endsWith(t, ended, "hangup")
		})
	})
	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		eachMode(t, func(t *testing.T, m mode) {
			_, rec, ended := run(t, m, podLimits(t), Options{Expiry: time.Now().Add(100 * time.Millisecond)})
			if err := endsWith(t, ended, "expiry"); err != nil {
				t.Fatal(err)
			}
			if got := received(t, rec); !slices.Equal(got, []string{"stream.expired"}) {
				t.Fatalf("got %v, want stream.expired", got)
			}
		})
	})
	t.Run("max age", func(t *testing.T) {
		t.Parallel()
		eachMode(t, func(t *testing.T, m mode) {
			began := time.Now()
			_, rec, ended := run(t, m, podLimits(t), Options{MaxAge: 100 * time.Millisecond})
			if err := endsWith(t, ended, "max age"); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); took < 90*time.Millisecond {
				t.Fatalf("ended after %s, before its maximum age", took)
			}
			if retries := bytes.Count(rec.bytes(), []byte("retry: ")); retries != 2 { // the first, then the rebalance
				t.Fatalf("%d retry fields, want 2:\n%s", retries, rec.bytes())
			}
		})
	})
	t.Run("drain", func(t *testing.T) {
		t.Parallel()
		eachMode(t, func(t *testing.T, m mode) {
			drain := make(chan struct{})
			s, rec, ended := run(t, m, podLimits(t), Options{Drain: drain})
			select {
			case err := <-ended:
				t.Fatalf("ended (%v) before the drain", err)
			case <-time.After(100 * time.Millisecond):
			}
			close(drain)
			s.Wake()
			if err := endsWith(t, ended, "drain"); err != nil {
				t.Fatal(err)
			}
			if retries := bytes.Count(rec.bytes(), []byte("retry: ")); retries != 2 {
				t.Fatalf("%d retry fields, want 2:\n%s", retries, rec.bytes())
			}
		})
	})
}

// A client that hangs up, and events pushed, before Start (while the
// handler still registers the stream) run nothing: the first round is
// Start's, it ends the stream once, and no waker is left on it.
func TestDetachedWakesBeforeStartWaitForIt(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		s := New([]string{"a:1"}, h, podLimits(t), zap.NewNop())
		w, _ := m.client()
		d := s.Detach(t.Context(), begin(t, t.Context(), s, w, Options{}))
		s.Push(h.add("a:1", 7, 1))
		d.Hangup()
		d.Wake()
		if st := d.state.Load(); st != rerun {
			t.Fatalf("state %d before Start, want a round asked for (%d) and none queued", st, rerun)
		}
		ended := make(chan error, 2)
		d.Start(func(err error) { ended <- err })
		if err := endsWith(t, ended, "hang-up before Start"); err != nil {
			t.Fatalf("onEnd(%v), want nil after a hang-up", err)
		}
		s.mu.Lock()
		w2 := s.waker
		s.mu.Unlock()
		if w2 != nil {
			t.Fatal("an ended stream still has a waker")
		}
	})
}
