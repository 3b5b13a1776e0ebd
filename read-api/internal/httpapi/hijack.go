package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"notify/read-api/internal/stream"
)

// hijacked is a stream's connection after net/http let go of it: an
// http.ResponseWriter that writes the HTTP/1.1 head itself and then the
// event stream straight to the socket, delimited by closing the connection.
type hijacked struct {
	conn   net.Conn
	header http.Header
	head   []byte // pending response head, sent with the first write
}

var _ interface {
	http.ResponseWriter
	http.Flusher
	SetWriteDeadline(time.Time) error
} = (*hijacked)(nil)

// hijack takes the connection of w, keeping the headers already set (CORS,
// request id). It fails for connections that cannot be taken (HTTP/2, test
// recorders); the caller then serves through net/http.
func hijack(w http.ResponseWriter) (*hijacked, error) {
	header := w.Header().Clone()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("httpapi: hijack: %w", err)
	}
	// net/http may have left its read deadline (ReadTimeout) on the
	// connection; a stream's lifetime is governed by the stream itself.
	_ = conn.SetDeadline(time.Time{})
	if brw.Reader.Buffered() > 0 { // a client pipelining another request: not an SSE client
		_ = conn.Close()
		return nil, fmt.Errorf("httpapi: hijack: unexpected bytes after the request")
	}
	return &hijacked{conn: conn, header: header}, nil
}

// connWaiter parks a stream in a read of its connection, with the read
// deadline as the stream's timer: SSE clients send nothing after their
// request, so the read returns only when the client leaves, the deadline
// passes, or Wake moves the deadline to the past. No timer, channel or
// watcher goroutine per stream: the connection is all it holds.
type connWaiter struct {
	conn  net.Conn
	woken atomic.Bool
	armed time.Time // the read deadline set; zero when it may have been moved
	buf   [1]byte
}

var _ stream.Waiter = (*connWaiter)(nil)

// aLongTimeAgo is a deadline that has passed: it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

func (w *connWaiter) Wake() {
	if !w.woken.Swap(true) {
		_ = w.conn.SetReadDeadline(aLongTimeAgo)
	}
}

func (w *connWaiter) Wait(deadline time.Time) bool {
	if w.woken.Swap(false) {
		w.armed = time.Time{}
		return false
	}
	if !deadline.Equal(w.armed) {
		if err := w.conn.SetReadDeadline(deadline); err != nil {
			return true // closed
		}
		w.armed = deadline
	}
	// A Wake between the check above and the new deadline had its past
	// deadline overwritten: look again before blocking.
	if w.woken.Swap(false) {
		w.armed = time.Time{}
		return false
	}
	_, err := w.conn.Read(w.buf[:])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline passed or Wake moved it. Clearing the mark before
		// the stream takes its queue loses no wake: whatever a Wake
		// announced was queued before it.
		w.woken.Store(false)
		w.armed = time.Time{}
		return false
	}
	return true // the client left, or sent bytes, which no SSE client does
}

func (h *hijacked) Header() http.Header {
	if h.header == nil { // after WriteHeader: changes no longer matter
		h.header = http.Header{}
	}
	return h.header
}

func (h *hijacked) WriteHeader(code int) {
	var head bytes.Buffer
	fmt.Fprintf(&head, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	h.header.Set("Connection", "close") // the body ends when the connection does
	_ = h.header.Write(&head)
	head.WriteString("\r\n")
	h.head = head.Bytes()
	h.header = nil // sent: not kept for the stream's hour
}

func (h *hijacked) Write(b []byte) (int, error) {
	if h.head != nil {
		buf := append(h.head, b...)
		h.head = nil
		if _, err := h.conn.Write(buf); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return h.conn.Write(b)
}

// Flush does nothing: every Write goes to the socket.
func (h *hijacked) Flush() {}

func (h *hijacked) SetWriteDeadline(t time.Time) error { return h.conn.SetWriteDeadline(t) }
