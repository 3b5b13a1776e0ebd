package stream

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// socket is a recorder that can be written without waiting, as the
// hijacked connection: TryWrite takes at most room bytes per call (all
// when room is 0) and fails once a write deadline has passed, as a
// socket's poller does.
type socket struct {
	*recorder
	room int

	mu       sync.Mutex
	deadline time.Time
	tries    int // TryWrite calls
	writes   int // Write calls
}

func newSocket(room int) *socket { return &socket{recorder: newRecorder(), room: room} }

var errDeadline = errors.New("i/o timeout")

func (s *socket) TryWrite(b []byte) (int, error) {
	s.mu.Lock()
	s.tries++
	expired := !s.deadline.IsZero() && time.Now().After(s.deadline)
	s.mu.Unlock()
	if expired {
		return 0, errDeadline
	}
	if s.room > 0 && len(b) > s.room {
		b = b[:s.room]
	}
	return s.recorder.Write(b)
}

func (s *socket) Write(b []byte) (int, error) {
	s.mu.Lock()
	s.writes++
	s.mu.Unlock()
	return s.recorder.Write(b)
}

func (s *socket) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	return nil
}

func (s *socket) counts() (tries, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries, s.writes
}

// newRunQueue is a run queue stopped when the test ends.
func newRunQueue(t *testing.T) *RunQueue {
	t.Helper()
	q := NewRunQueue()
	t.Cleanup(q.Close)
	return q
}

// podLimits are limits with a run queue of the test's own, as every pod
// has.
func podLimits(t *testing.T) Limits {
	t.Helper()
	l := limits()
	l.Runs = newRunQueue(t)
	return l
}

func want(topic string, from, to int) []string {
	var w []string
	for seq := from; seq <= to; seq++ {
		w = append(w, fmt.Sprintf("%s/7/%d", topic, seq))
	}
	return w
}

// Live events in order on a socket that takes every write are written
// by the run queue's TryWrite alone: no blocking Write after Begin's.
func TestRunQueueWritesWithoutWaiting(t *testing.T) {
	t.Parallel()
	h := newHistory()
	l := podLimits(t)
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	sock := newSocket(0)
	start(t, t.Context(), s, sock, Options{})
	_, beginWrites := sock.counts()
	for seq := uint64(1); seq <= 50; seq++ {
		s.Push(h.add("a:1", 7, seq))
	}
	until(t, "50 events", func() bool { return len(received(t, sock.recorder)) == 50 })
	if got := received(t, sock.recorder); !slices.Equal(got, want("a:1", 1, 50)) {
		t.Fatalf("got %v", got)
	}
	if tries, writes := sock.counts(); tries == 0 || writes != beginWrites {
		t.Fatalf("%d TryWrite and %d Write calls after Begin, want only TryWrite", tries, writes-beginWrites)
	}
}

// A socket that takes a few bytes at a time leaves the rest to a round
// that waits: every byte still arrives once, in order.
func TestRunQueuePartialWrites(t *testing.T) {
	t.Parallel()
	h := newHistory()
	l := podLimits(t)
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	sock := newSocket(7)
	start(t, t.Context(), s, sock, Options{})
	for seq := uint64(1); seq <= 40; seq++ {
		s.Push(h.add("a:1", 7, seq))
		if seq%10 == 0 {
			time.Sleep(5 * time.Millisecond) // several rounds, each cut short
		}
	}
	until(t, "40 events", func() bool { return len(received(t, sock.recorder)) == 40 })
	if got := received(t, sock.recorder); !slices.Equal(got, want("a:1", 1, 40)) {
		t.Fatalf("got %v", got)
	}
	if _, writes := sock.counts(); writes < 2 {
		t.Fatalf("%d blocking writes: the rest of a short write was never written by a waiting round", writes)
	}
}

// An event after a gap needs history: the round moves to a goroutine,
// fills the gap, and the events after it follow in order.
func TestRunQueueGapGoesToHistory(t *testing.T) {
	t.Parallel()
	h := newHistory()
	l := podLimits(t)
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	sock := newSocket(0)
	start(t, t.Context(), s, sock, Options{})
	s.Push(h.add("a:1", 7, 1))
	until(t, "the first event", func() bool { return len(received(t, sock.recorder)) == 1 })
	h.add("a:1", 7, 2)
	h.add("a:1", 7, 3) // published, their messages lost on the way to the pod
	for seq := uint64(4); seq <= 6; seq++ {
		s.Push(h.add("a:1", 7, seq))
	}
	until(t, "6 events", func() bool { return len(received(t, sock.recorder)) == 6 })
	if got := received(t, sock.recorder); !slices.Equal(got, want("a:1", 1, 6)) {
		t.Fatalf("got %v", got)
	}
}

// Begin's write deadline is removed when the stream detaches: writes that
// never wait must not meet it expired an hour later.
func TestRunQueueClearsBeginDeadline(t *testing.T) {
	t.Parallel()
	h := newHistory()
	l := podLimits(t)
	l.WriteTimeout = 20 * time.Millisecond
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	sock := newSocket(0)
	_, ended := start(t, t.Context(), s, sock, Options{})
	time.Sleep(50 * time.Millisecond) // Begin's deadline, if left, has passed
	s.Push(h.add("a:1", 7, 1))
	until(t, "the event", func() bool { return len(received(t, sock.recorder)) == 1 })
	select {
	case err := <-ended:
		t.Fatalf("the stream ended: %v", err)
	default:
	}
}

// An idle stream on the run queue gets its heartbeats there, one comment
// per due time.
func TestRunQueueHeartbeat(t *testing.T) {
	t.Parallel()
	l := podLimits(t)
	l.Heartbeat = 50 * time.Millisecond
	s := New([]string{"a:1"}, newHistory(), l, zap.NewNop())
	sock := newSocket(0)
	start(t, t.Context(), s, sock, Options{})
	_, beginWrites := sock.counts()
	until(t, "three heartbeats", func() bool { return bytes.Count(sock.bytes(), []byte(":\n")) >= 3 })
	if _, writes := sock.counts(); writes != beginWrites {
		t.Fatalf("%d blocking writes for heartbeats, want none", writes-beginWrites)
	}
	if bytes.Contains(sock.bytes(), []byte(":\n:\n")) {
		t.Fatalf("two heartbeats in one write:\n%s", sock.bytes())
	}
}

// A closed queue's workers are gone: a stream that outlives it still gets
// its rounds, on goroutines of their own, and ends.
func TestRunQueueClosed(t *testing.T) {
	t.Parallel()
	h := newHistory()
	l := limits()
	l.Runs = NewRunQueue()
	s := New([]string{"a:1"}, h, l, zap.NewNop())
	sock := newSocket(0)
	opts := Options{Expiry: time.Now().Add(time.Hour), MaxAge: time.Hour}
	if err := s.Begin(t.Context(), sock, opts); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 2)
	d := s.Detach(t.Context(), opts)
	d.Start(func(err error) { ended <- err })
	s.Push(h.add("a:1", 7, 1))
	until(t, "the first event", func() bool { return len(received(t, sock.recorder)) == 1 })
	l.Runs.Close()
	s.Push(h.add("a:1", 7, 2))
	until(t, "the event after the close", func() bool { return len(received(t, sock.recorder)) == 2 })
	if got := received(t, sock.recorder); !slices.Equal(got, want("a:1", 1, 2)) {
		t.Fatalf("got %v", got)
	}
	d.Hangup()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("ended with %v, want nil (hung up)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after its queue closed")
	}
}
