package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"notify/pkg/httpserver"
	"notify/read-api/internal/stream"
)

// lifecycle is one stream's registrations, from its join to its end. The
// handler sets every field before the stream starts; end, which undoes
// them, runs once, after the start, and reads nothing set later.
type lifecycle struct {
	h       *Handler
	s       *stream.Stream
	topics  []string
	subject string
	release func()   // the drain's registration
	conn    net.Conn // the hijacked connection; nil when net/http keeps it
	unwatch func()   // the hang-up watch; nil if the watch failed
}

// run writes the response head and the replay on the handler's
// goroutine, gives back the setup slot (setupDone), registers the
// client's hang-up and starts the stream's rounds (stream.Detached). With the connection hijacked (hc), the handler then
// returns. Otherwise the rounds write to net/http's ResponseWriter, which
// must not outlive the handler: it waits for the stream's end.
func (l *lifecycle) run(c *gin.Context, hc *hijacked, opts stream.Options, setupDone func()) {
	ctx, w := c.Request.Context(), http.ResponseWriter(c.Writer)
	if hc != nil {
		// History reads are bounded by the Redis client's own timeouts,
		// writes by the stream's write deadline.
		ctx, w, l.conn = context.Background(), hc, hc.conn
	}
	err := l.s.Begin(ctx, w, opts)
	setupDone()
	if err != nil {
		setOutcome(c, hc, "stream ended during its replay")
		l.end(err)
		return
	}
	d := l.s.Detach(ctx, opts)
	l.watch(ctx, d)
	// Read before Start: from then on the stream's rounds write to hc.
	setOutcome(c, hc, "streaming")
	if hc != nil {
		d.Start(l.end)
		return
	}
	ended := make(chan struct{})
	d.Start(func(err error) {
		l.end(err)
		close(ended)
	})
	<-ended
}

// watch registers what tells the stream that its client hung up: the
// pod's hang-up watcher for a hijacked connection, the request's context
// for one net/http keeps.
func (l *lifecycle) watch(ctx context.Context, d *stream.Detached) {
	if l.conn == nil {
		stop := context.AfterFunc(ctx, d.Hangup)
		l.unwatch = func() { stop() }
		return
	}
	var err error
	if l.unwatch, err = l.h.hangups.Watch(l.conn, d.Hangup); err != nil {
		l.h.log.Warn("stream without hang-up watch", zap.Error(err)) // it still ends on its first failed write
	}
}

// setOutcome tells the access log what the client of a hijacked
// connection got; net/http's writer tells it for the others.
func setOutcome(c *gin.Context, hc *hijacked, note string) {
	if hc != nil {
		httpserver.SetOutcome(c, httpserver.Outcome{Status: hc.status, Bytes: hc.written, Note: note})
	}
}

// end undoes the registrations in reverse order.
func (l *lifecycle) end(err error) {
	h := l.h
	if l.unwatch != nil {
		l.unwatch()
	}
	if l.conn != nil {
		_ = l.conn.Close()
	}
	h.metrics.Connections.Dec()
	h.metrics.closedStream(l.s.EndReason(err))
	l.release()
	h.hub.Leave(l.s, l.topics)
	h.subjects.release(l.subject)
	switch {
	case errors.Is(err, stream.ErrSlow): // logged by the stream, counted above
	case err != nil:
		h.log.Debug("stream ended", zap.Error(err))
	}
}
