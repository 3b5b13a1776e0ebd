package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/sseclient"
	"notify/read-api/internal/cursor"
	"notify/read-api/internal/hub"
)

// history is an in-memory History: per topic an epoch and the retained
// events (seq → id). It stands in for Redis only in these unit tests of
// the stream's ordering decisions; the integration tests use real Redis.
type history struct {
	mu     sync.Mutex
	epoch  map[string]uint64
	events map[string]map[uint64]string
	last   map[string]uint64
	branch uint32 // bumped to rewrite history, as a failover that lost the tail does
	pad    int    // bytes added to every event's type, to make events large
}

func link(branch uint32, epoch, seq uint64) uint32 {
	if seq == 0 {
		return 0
	}
	return branch*100000 + uint32(epoch*1000+seq)
}

func newHistory() *history {
	return &history{epoch: map[string]uint64{}, events: map[string]map[uint64]string{}, last: map[string]uint64{}}
}

func (h *history) add(topic string, epoch, seq uint64) *hub.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.epoch[topic] != epoch {
		h.epoch[topic], h.events[topic] = epoch, map[uint64]string{}
	}
	h.events[topic][seq], h.last[topic] = fmt.Sprintf("%s/%d/%d", topic, epoch, seq), seq
	m := h.message(topic, seq)
	return hub.NewEvent(m)
}

func (h *history) message(topic string, seq uint64) notification.Message {
	e := h.epoch[topic]
	return notification.Message{
		Topic: topic, Pos: notification.Position{Epoch: e, Seq: seq, Link: link(h.branch, e, seq)}, Prev: link(h.branch, e, seq-1),
		Type: "t" + strings.Repeat("x", h.pad), Envelope: []byte(`"` + h.events[topic][seq] + `"`),
	}
}

func (h *history) trim(topic string, below uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for seq := range h.events[topic] {
		if seq < below {
			delete(h.events[topic], seq)
		}
	}
}

func (h *history) Positions(_ context.Context, topics []string) ([]notification.Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]notification.Position, len(topics))
	for i, t := range topics {
		if h.epoch[t] != 0 {
			out[i] = notification.Position{Epoch: h.epoch[t], Seq: h.last[t], Link: link(h.branch, h.epoch[t], h.last[t])}
		}
	}
	return out, nil
}

func (h *history) Range(_ context.Context, q notification.RangeQuery) (notification.RangePage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var p notification.RangePage
	bytes := 0
	for seq := q.After + 1; seq <= h.last[q.Topic] && int64(len(p.Events)) < q.Count; seq++ {
		if _, ok := h.events[q.Topic][seq]; !ok || h.epoch[q.Topic] != q.Epoch {
			continue
		}
		m := h.message(q.Topic, seq)
		size := weight([]notification.Message{m})
		if bytes+size > q.MaxBytes {
			if len(p.Events) == 0 {
				p.Need = size
			}
			break
		}
		p.Events, bytes = append(p.Events, m), bytes+size
	}
	return p, nil
}

// recorder is a ResponseWriter safe to read while the stream writes.
type recorder struct {
	mu     sync.Mutex
	header http.Header
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(b)
}
func (r *recorder) Flush() {}
func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.body.Bytes())
}

// mode is one of the two ways a stream's rounds run: on the pod's run
// queue for a client written without waiting (a socket, as the hijacked
// connection), or each on a goroutine of its own for a client that may
// make a write wait (net/http's writer).
type mode struct {
	name string
	try  bool
}

var modes = [...]mode{{"run queue", true}, {"goroutines", false}}

// client is a client of mode m, and the recorder of what it received.
func (m mode) client() (http.ResponseWriter, *recorder) {
	if m.try {
		sock := newSocket(0)
		return sock, sock.recorder
	}
	rec := newRecorder()
	return rec, rec
}

// eachMode runs test once per mode, in parallel.
func eachMode(t *testing.T, test func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m)
		})
	}
}

// start runs s as the handler does: Begin, Detach, the client's hang-up
// when ctx ends, Start (begin, then detach).
func start(t *testing.T, ctx context.Context, s *Stream, w http.ResponseWriter, opts Options) (*Detached, <-chan error) {
	t.Helper()
	return detach(ctx, s, begin(t, ctx, s, w, opts))
}

// begin calls Begin with opts, whose expiry and age default to an hour,
// and returns them.
func begin(t *testing.T, ctx context.Context, s *Stream, w http.ResponseWriter, opts Options) Options {
	t.Helper()
	if opts.Expiry.IsZero() {
		opts.Expiry = time.Now().Add(time.Hour)
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = time.Hour
	}
	if err := s.Begin(ctx, w, opts); err != nil {
		t.Fatal(err)
	}
	return opts
}

// detach detaches s after begin, registers its client's hang-up on ctx's
// end and starts it. The channel receives onEnd's error, after the
// hang-up watch was stopped.
func detach(ctx context.Context, s *Stream, opts Options) (*Detached, <-chan error) {
	d := s.Detach(ctx, opts)
	unwatch := context.AfterFunc(ctx, d.Hangup)
	ended := make(chan error, 2)
	d.Start(func(err error) {
		unwatch()
		ended <- err
	})
	return d, ended
}

// serve runs a stream of mode m, calls feed once the stream is live,
// waits until the output has been quiet for 100 ms, hangs up, and returns
// what the client received and how the stream ended.
func serve(t *testing.T, m mode, h History, topics []string, lastEventID string, l Limits, feed func(s *Stream)) ([]sseclient.Event, error) {
	t.Helper()
	w, rec := m.client()
	s := New(topics, h, l, zap.NewNop())
	ctx, cancel := context.WithCancel(t.Context())
	_, ended := start(t, ctx, s, w, Options{LastEventID: lastEventID})
	feed(s)
	for last, quiet, deadline := -1, time.Now(), time.Now().Add(5*time.Second); time.Since(quiet) < 100*time.Millisecond; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the output never went quiet")
		}
		if n := len(rec.bytes()); n != last {
			last, quiet = n, time.Now()
		}
	}
	cancel()
	err := endsWith(t, ended, "hang-up")
	evs, perr := sseclient.ParseBytes(rec.bytes(), nil)
	if perr != nil {
		t.Fatal(perr)
	}
	return evs, err
}

func datas(evs []sseclient.Event) []string {
	var out []string
	for _, ev := range evs {
		if strings.HasPrefix(ev.Type, "stream.") {
			out = append(out, ev.Type)
		} else {
			out = append(out, strings.Trim(ev.Data, `"`))
		}
	}
	return out
}

func limits() Limits { return DefaultLimits(time.Hour) }

// A live event that does not continue the chain the stream saw (history
// rewritten by a failover) is announced before it is delivered.
func TestLiveDivergenceIsAnnounced(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		h.add("a:1", 7, 1)
		evs, err := serve(t, m, h, []string{"a:1"}, "", podLimits(t), func(s *Stream) {
			h.mu.Lock()
			h.branch = 1
			h.mu.Unlock()
			s.Push(h.add("a:1", 7, 2))
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := datas(evs), []string{"stream.reset", "a:1/7/2"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func TestLiveInOrderDropsDuplicatesAndFillsGaps(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		evs, err := serve(t, m, h, []string{"a:1"}, "", podLimits(t), func(s *Stream) {
			e1, e2 := h.add("a:1", 7, 1), h.add("a:1", 7, 2)
			e3, e4 := h.add("a:1", 7, 3), h.add("a:1", 7, 4)
			for _, ev := range []*hub.Event{e1, e2, e2, e4, e3} { // a duplicate, then 3 missed live
				s.Push(ev)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := datas(evs), []string{"a:1/7/1", "a:1/7/2", "a:1/7/3", "a:1/7/4"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func cursorAt(topics []string, pos ...notification.Position) string {
	keys := make([]cursor.TopicKey, len(topics))
	for i, t := range topics {
		keys[i] = cursor.KeyOf(t)
	}
	b, _ := cursor.Append(nil, nil, keys, pos)
	return string(b)
}

func TestResume(t *testing.T) {
	t.Parallel()
	topics := []string{"a:1", "b:2"}
	tests := []struct {
		name   string
		setup  func(h *history)
		cursor string
		want   []string
	}{
		{"replays what was missed per topic", func(h *history) {
			for seq := uint64(1); seq <= 4; seq++ {
				h.add("a:1", 7, seq)
			}
			h.add("b:2", 9, 1)
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 2}, notification.Position{}), []string{"a:1/7/3", "a:1/7/4", "b:2/9/1"}},
		{"trimmed history is announced", func(h *history) {
			for seq := uint64(1); seq <= 6; seq++ {
				h.add("a:1", 7, seq)
			}
			h.trim("a:1", 5)
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 2}, notification.Position{}), []string{"stream.reset", "a:1/7/5", "a:1/7/6"}},
		{"a new epoch (data lost) is announced", func(h *history) {
			h.add("a:1", 8, 1)
			h.add("a:1", 8, 2)
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 5}, notification.Position{}), []string{"stream.reset", "a:1/8/1", "a:1/8/2"}},
		{"history behind the cursor (rewound) is announced", func(h *history) {
			h.add("a:1", 7, 1)
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 3}, notification.Position{}), []string{"stream.reset"}},
		{"history rewritten past the cursor (failover lost the tail) is announced", func(h *history) {
			h.branch = 1
			for seq := uint64(1); seq <= 5; seq++ {
				h.add("a:1", 7, seq)
			}
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 3, Link: link(0, 7, 3)}, notification.Position{}), []string{"stream.reset", "a:1/7/4", "a:1/7/5"}},
		{"history rewritten to the cursor's height is announced", func(h *history) {
			h.branch = 1
			for seq := uint64(1); seq <= 3; seq++ {
				h.add("a:1", 7, seq)
			}
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 3, Link: link(0, 7, 3)}, notification.Position{}), []string{"stream.reset"}},
		{"a cursor on the same history replays without reset", func(h *history) {
			for seq := uint64(1); seq <= 4; seq++ {
				h.add("a:1", 7, seq)
			}
		}, cursorAt(topics, notification.Position{Epoch: 7, Seq: 3, Link: link(0, 7, 3)}, notification.Position{}), []string{"a:1/7/4"}},
		{"an unreadable cursor resets every topic", func(h *history) { h.add("a:1", 7, 1) }, "garbage!", []string{"stream.reset"}},
		{"a topic the cursor does not cover starts now", func(h *history) { h.add("b:2", 9, 1) },
			cursorAt([]string{"a:1"}, notification.Position{}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachMode(t, func(t *testing.T, m mode) {
				h := newHistory()
				tc.setup(h)
				evs, err := serve(t, m, h, topics, tc.cursor, podLimits(t), func(*Stream) {})
				if err != nil {
					t.Fatal(err)
				}
				if got := datas(evs); !slices.Equal(got, tc.want) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			})
		})
	}
}

// After the pod lost its Redis connection, Resync brings the topic up to
// date from history although no live event came.
func TestResync(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		h.add("a:1", 7, 1)
		evs, err := serve(t, m, h, []string{"a:1"}, "", podLimits(t), func(s *Stream) {
			h.add("a:1", 7, 2)
			h.add("a:1", 7, 3)
			s.Resync("a:1")
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := datas(evs), []string{"a:1/7/2", "a:1/7/3"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

// flakyHistory fails every read while down is set, as Redis away does.
type flakyHistory struct {
	*history
	down   atomic.Bool
	failed atomic.Int32 // reads failed
}

var errRedisDown = errors.New("redis: connection refused")

func (f *flakyHistory) Positions(ctx context.Context, topics []string) ([]notification.Position, error) {
	if f.down.Load() {
		f.failed.Add(1)
		return nil, errRedisDown
	}
	return f.history.Positions(ctx, topics)
}

func (f *flakyHistory) Range(ctx context.Context, q notification.RangeQuery) (notification.RangePage, error) {
	if f.down.Load() {
		f.failed.Add(1)
		return notification.RangePage{}, errRedisDown
	}
	return f.history.Range(ctx, q)
}

// A history read that fails while Redis is away is retried, with nothing
// else to wake the stream, until Redis answers: the events missed then
// arrive in order. Both ways a stream reads history after its start are
// retried alike: a resync, and the gap before a live event.
func TestHistoryReadsRetryUntilHistoryAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		miss func(h *flakyHistory, s *Stream) // while Redis is away
	}{
		{"resync", func(h *flakyHistory, s *Stream) {
			h.add("a:1", 7, 2)
			h.add("a:1", 7, 3)
			s.Resync("a:1")
		}},
		{"gap", func(h *flakyHistory, s *Stream) {
			h.add("a:1", 7, 2) // missed by the stream: only history has it
			s.Push(h.add("a:1", 7, 3))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachMode(t, func(t *testing.T, m mode) {
				h := &flakyHistory{history: newHistory()}
				h.add("a:1", 7, 1)
				w, rec := m.client()
				s := New([]string{"a:1"}, h, podLimits(t), zap.NewNop())
				ctx, cancel := context.WithCancel(t.Context())
				d, ended := start(t, ctx, s, w, Options{})
				until(t, "the stream at rest", func() bool { return d.state.Load() == idle })
				h.down.Store(true)
				c.miss(h, s)
				until(t, "a failed read, then the stream at rest", func() bool { return h.failed.Load() > 0 && d.state.Load() == idle })
				h.down.Store(false) // only the retry can bring the events now
				until(t, "the missed events", func() bool { return len(received(t, rec)) == 2 })
				if got, want := received(t, rec), []string{"a:1/7/2", "a:1/7/3"}; !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
				cancel()
				if err := endsWith(t, ended, "hang-up"); err != nil {
					t.Fatalf("onEnd(%v), want nil after a hang-up", err)
				}
			})
		})
	}
}

// Past the backlog limit the stream ends as slow instead of growing.
func TestSlowStreamEnds(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		h := newHistory()
		l := podLimits(t)
		l.MaxQueueEvents = 3
		s := New([]string{"a:1"}, h, l, zap.NewNop())
		for seq := uint64(1); seq <= 4; seq++ {
			s.Push(h.add("a:1", 7, seq))
		}
		w, _ := m.client()
		_, ended := start(t, t.Context(), s, w, Options{})
		if err := endsWith(t, ended, "slow"); !errors.Is(err, ErrSlow) {
			t.Fatalf("onEnd(%v), want ErrSlow", err)
		}
	})
}
