package stream

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/read-api/internal/hub"
)

// connWriter is a client on a loopback TCP connection whose other end a
// goroutine reads and discards: a round's write goes down the same call
// chain as on a real connection.
type connWriter struct {
	conn   net.Conn
	header http.Header
}

func (w *connWriter) Header() http.Header                { return w.header }
func (w *connWriter) WriteHeader(int)                    {}
func (w *connWriter) Write(b []byte) (int, error)        { return w.conn.Write(b) }
func (w *connWriter) Flush()                             {}
func (w *connWriter) SetWriteDeadline(t time.Time) error { return w.conn.SetWriteDeadline(t) }

// tryConnWriter is a connWriter the run queue writes to; the reader keeps
// up, so its writes do not wait.
type tryConnWriter struct{ *connWriter }

func (w tryConnWriter) TryWrite(b []byte) (int, error) { return w.conn.Write(b) }

func loopback(b *testing.B) *connWriter {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return &connWriter{conn: c, header: http.Header{}}
}

// benchStream is a stream after Begin and Detach whose rounds the
// benchmark runs itself: nothing wakes it (no Start), and each round
// delivers the one event pushed before it.
func benchStream(b *testing.B, w http.ResponseWriter, l Limits) (*Stream, *Detached) {
	b.Helper()
	s := New([]string{"a:1"}, newHistory(), l, zap.NewNop())
	opts := Options{Expiry: time.Now().Add(time.Hour), MaxAge: time.Hour}
	if err := s.Begin(b.Context(), w, opts); err != nil {
		b.Fatal(err)
	}
	d := s.Detach(b.Context(), opts)
	d.onEnd = func(err error) { b.Errorf("the stream ended: %v", err) }
	s.clearDeadline()
	return s, d
}

func benchEvent() *hub.Event {
	return hub.NewEvent(notification.Message{
		Topic: "a:1", Pos: notification.Position{Epoch: 7}, Type: "order.created",
		Envelope: []byte(`{"id":"0193a5b4-0000-7000-8000-000000000000","topic":"a:1","type":"order.created","data":{"n":1}}`),
	})
}

// A round on a run-queue worker: one live event, one write the socket
// takes at once.
func BenchmarkRoundOnRunQueue(b *testing.B) {
	l := limits()
	l.Runs = NewRunQueue()
	b.Cleanup(l.Runs.Close)
	s, d := benchStream(b, tryConnWriter{loopback(b)}, l)
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		ev.Pos.Seq++
		s.Push(ev)
		d.state.Store(running)
		d.runInline()
	}
}

// A round that may wait, on a goroutine started for it as a wake of a
// stream without a run queue starts one: a round whose call chain
// outgrows the starting stack shows here as a stack copy per round.
func BenchmarkRoundOnNewGoroutine(b *testing.B) {
	s, d := benchStream(b, loopback(b), limits())
	ev := benchEvent()
	done := make(chan struct{})
	b.ReportAllocs()
	for b.Loop() {
		ev.Pos.Seq++
		s.Push(ev)
		d.state.Store(running)
		go func() {
			d.rounds()
			done <- struct{}{}
		}()
		<-done
	}
}
