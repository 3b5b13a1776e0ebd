// Package stream serves one SSE connection: it queues the events the hub
// pushes, keeps the stream's position in every topic, fills any gap from
// history (resume, Redis outage, lost pub/sub messages) and writes to the
// client with a deadline per write that may wait. Begin writes the
// response head and the replay; then Detached runs the stream's rounds
// (runner.round), each a pass over every rule of the stream, on the pod's
// run queue or on short-lived goroutines.
package stream

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/read-api/internal/cursor"
	"notify/read-api/internal/hub"
)

// History reads topics' positions and past events. Range returns a page
// bounded in bytes before it is read (notification.RangeQuery): a stream
// holds one page at a time, under the pod's ReplayBudget.
type History interface {
	Positions(ctx context.Context, topics []string) ([]notification.Position, error)
	Range(ctx context.Context, q notification.RangeQuery) (notification.RangePage, error)
}

// Limits shape every stream of a pod.
type Limits struct {
	Heartbeat      time.Duration
	WriteTimeout   time.Duration // one write to the client
	MaxQueueEvents int           // backlog past which a stream is closed as slow
	MaxQueueBytes  int           // live events queued plus the replay page being written
	Retry          time.Duration // the retry: field sent first
	Replay         *ReplayBudget // shared by every stream of the pod
	Stats          *Stats        // where the pod counts resumes and resets; nil: nowhere
	Runs           *RunQueue     // shared by every stream of the pod; nil: every round runs on a goroutine of its own
}

// DefaultLimits are sane for production; the heartbeat comes from config.
// Each call makes a new replay budget: call it once per pod.
func DefaultLimits(heartbeat time.Duration) Limits {
	return Limits{
		Heartbeat: heartbeat, WriteTimeout: 10 * time.Second, MaxQueueEvents: 4096, MaxQueueBytes: 4 << 20, Retry: 2 * time.Second,
		Replay: NewReplayBudget(replayBytes),
	}
}

// ErrSlow ends a stream whose client does not read fast enough.
var ErrSlow = errors.New("stream: client too slow, backlog limit passed")

// Stream is one client connection. Push and Resync are called by the hub;
// everything else runs in the stream's rounds, one at a time.
type Stream struct {
	topics  []string
	keys    []cursor.TopicKey
	pos     []notification.Position // last position sent, per topic
	history History
	limits  Limits
	log     *zap.Logger

	mu       sync.Mutex
	queue    []*hub.Event
	queued   int // bytes of frames in queue
	paged    int // bytes of the replay page being written: they count against the same limit
	overflow bool
	resync   []bool    // per topic: check history, events may be missing
	waker    *Detached // set by Detached.Start: what Push and Resync wake

	targets   []notification.Position // from Open until Begin
	w         http.ResponseWriter     // the client, from Begin
	rc        *http.ResponseController
	out       []byte    // frames not yet written
	scratch   []byte    // cursor encoding
	lastWrite time.Time // of the last flush: the heartbeat counts from it
	deadline  time.Time // the connection's write deadline

	resetsSent int // stream.reset events written
	ended      int // why a round ended the stream (EndReasons)
}

var _ hub.Member = (*Stream)(nil)

// New returns a stream for topics (validated, deduplicated).
func New(topics []string, history History, limits Limits, log *zap.Logger) *Stream {
	s := &Stream{
		topics: topics, keys: make([]cursor.TopicKey, len(topics)), pos: make([]notification.Position, len(topics)),
		history: history, limits: limits, log: log,
		resync: make([]bool, len(topics)),
	}
	for i, t := range topics {
		s.keys[i] = cursor.KeyOf(t)
	}
	return s
}

// Topics are the stream's topics.
func (s *Stream) Topics() []string { return s.topics }

// Push queues ev without blocking; past the backlog limit the stream is
// marked slow and ends.
func (s *Stream) Push(ev *hub.Event) {
	s.mu.Lock()
	switch {
	case s.overflow:
	case len(s.queue) >= s.limits.MaxQueueEvents || s.queued+s.paged+len(ev.Frame) > s.limits.MaxQueueBytes:
		s.overflow, s.queue, s.queued = true, nil, 0
	default:
		s.queue = append(s.queue, ev)
		s.queued += len(ev.Frame)
	}
	w := s.waker
	s.mu.Unlock()
	if w != nil {
		w.Wake()
	}
}

// Wake makes the stream look at its deadlines and the drain now.
func (s *Stream) Wake() {
	s.mu.Lock()
	w := s.waker
	s.mu.Unlock()
	if w != nil {
		w.Wake()
	}
}

func (s *Stream) setWaker(w *Detached) {
	s.mu.Lock()
	s.waker = w
	s.mu.Unlock()
}

// Resync asks the stream to check topic against history.
func (s *Stream) Resync(topic string) {
	s.mu.Lock()
	for i, t := range s.topics {
		if t == topic {
			s.resync[i] = true
		}
	}
	w := s.waker
	s.mu.Unlock()
	if w != nil {
		w.Wake()
	}
}

// take empties the queue and the resync marks into events and resync,
// after what they hold already (left by a round that stopped early).
func (s *Stream) take(events []*hub.Event, resync []int) ([]*hub.Event, []int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events = append(events, s.queue...)
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	if cap(s.queue) > 256 {
		s.queue = nil // a burst is over: do not keep its memory
	}
	for i, r := range s.resync {
		if r {
			if !slices.Contains(resync, i) {
				resync = append(resync, i)
			}
			s.resync[i] = false
		}
	}
	return events, resync, s.overflow
}

func (s *Stream) index(key cursor.TopicKey) int {
	for i, k := range s.keys {
		if k == key {
			return i
		}
	}
	return -1
}
