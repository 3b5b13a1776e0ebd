package httpapi

import (
	"context"
	"errors"
	"net"

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
	release func() // the drain's registration
	// setupDone gives back the setup slot once the replay is written.
	setupDone func()
	conn      net.Conn
	unwatch   func() // the hang-up watch; nil if the watch failed
}

// detach writes the response head and the replay on the handler's
// goroutine, then registers the connection's hang-up watch and starts the
// stream's rounds (stream.Detached); the handler returns.
func (l *lifecycle) detach(c *gin.Context, hc *hijacked, opts stream.Options) {
	// History reads are bounded by the Redis client's own timeouts, writes
	// by the stream's write deadline.
	err := l.s.Begin(context.Background(), hc, opts)
	l.setupDone()
	if err != nil {
		httpserver.SetOutcome(c, httpserver.Outcome{Status: hc.status, Bytes: hc.written, Note: "stream ended during its replay"})
		l.end(err)
		return
	}
	d := l.s.Detach(context.Background(), opts)
	if l.unwatch, err = l.h.hangups.Watch(l.conn, d.Hangup); err != nil {
		l.h.log.Warn("stream without hang-up watch", zap.Error(err)) // it still ends on its first failed write
	}
	// Read before Start: from then on the stream's rounds write to hc.
	httpserver.SetOutcome(c, httpserver.Outcome{Status: hc.status, Bytes: hc.written, Note: "streaming"})
	d.Start(l.end)
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
