package deploytest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// backend is the read side that the proxy test puts behind nginx: pods on
// loopback and a way to publish an event that every pod can deliver. Today it
// is fakeBackend; the real read-api processes (with write-api or Redis to
// publish) fit the same shape.
type backend struct {
	pods       []*pod
	streamPath string      // path and query of a stream request
	header     http.Header // sent with every stream request (e.g. Authorization)
	publish    func(t *testing.T, data string)
}

// pod is one read-api instance.
type pod struct {
	addr    string     // host:port on loopback
	streams func() int // open streams on this pod
	stop    func()     // the pod goes away; its open streams end
}

// fakeBackend starts n fake read-api pods sharing one event log, as real pods
// share Redis. Each streams text/event-stream with numeric ids and replays
// after Last-Event-ID, like read-api's cursor. It deliberately omits
// X-Accel-Buffering: the proxy configuration must not depend on that header.
func fakeBackend(t *testing.T, n int) *backend {
	log := &eventLog{changed: make(chan struct{})}
	b := &backend{
		streamPath: "/v1/stream?topic=seller:42",
		header:     http.Header{},
		publish:    func(_ *testing.T, data string) { log.append(data) },
	}
	for range n {
		var open atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			open.Add(1)
			defer open.Add(-1)
			log.serve(w, r)
		}))
		stop := sync.OnceFunc(func() {
			srv.CloseClientConnections()
			srv.Close()
		})
		t.Cleanup(stop)
		b.pods = append(b.pods, &pod{
			addr:    srv.Listener.Addr().String(),
			streams: func() int { return int(open.Load()) },
			stop:    stop,
		})
	}
	return b
}

// eventLog is the fake pods' shared history; event i has id i+1.
type eventLog struct {
	mu      sync.Mutex
	data    []string
	changed chan struct{} // closed and replaced on every append
}

func (l *eventLog) append(data string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.data = append(l.data, data)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.data)
}

// after returns the events after cursor and a channel closed on the next append.
func (l *eventLog) after(cursor int) ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.data[min(cursor, len(l.data)):], l.changed
}

func (l *eventLog) serve(w http.ResponseWriter, r *http.Request) {
	next := l.len() // no Last-Event-ID: live events only
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.Atoi(id)
		if err != nil {
			http.Error(w, "bad Last-Event-ID", http.StatusBadRequest)
			return
		}
		next = n
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprint(w, "retry: 1000\n\n")
	flusher := w.(http.Flusher)
	for {
		events, changed := l.after(next)
		for _, data := range events {
			next++
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", next, data)
		}
		flusher.Flush()
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}
