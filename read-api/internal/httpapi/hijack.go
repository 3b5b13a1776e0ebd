package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"notify/pkg/httpserver"
	"notify/read-api/internal/stream"
)

// hijacked is a stream's connection after net/http let go of it: an
// http.ResponseWriter that writes the HTTP/1.1 head itself and then the
// event stream straight to the socket, delimited by closing the connection.
type hijacked struct {
	conn    net.Conn
	raw     syscall.RawConn // conn's descriptor, for TryWrite
	header  http.Header
	head    []byte // pending response head, sent with the first write
	code    int    // the status of head
	status  int    // the status sent: 0 until the head is out
	written int64  // bytes written by Write, head included
}

// errCannotHijack is a connection net/http cannot give away (HTTP/2, a
// test recorder): the stream is served through net/http instead.
var errCannotHijack = errors.New("httpapi: the connection cannot be taken over")

var _ interface {
	http.ResponseWriter
	http.Flusher
	stream.TryWriter
	SetWriteDeadline(time.Time) error
} = (*hijacked)(nil)

// hijack takes the connection of w, keeping the headers already set (CORS,
// request id). It fails with errCannotHijack for connections that cannot
// be taken; the caller then serves through net/http. Any other error is a
// connection taken and closed, with nothing sent: not a stream's client.
func hijack(w http.ResponseWriter) (*hijacked, error) {
	if !hijackable(w) {
		return nil, errCannotHijack
	}
	header := w.Header().Clone()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCannotHijack, err)
	}
	conn = httpserver.Unwrap(conn) // the socket itself: its descriptor and writev

	// net/http may have left its read deadline (ReadTimeout) on the
	// connection; a stream's lifetime is governed by the stream itself.
	_ = conn.SetDeadline(time.Time{})
	if brw.Reader.Buffered() > 0 { // a client pipelining another request: not an SSE client
		_ = conn.Close()
		return nil, fmt.Errorf("httpapi: hijack: bytes after the request (pipelined, or a body)")
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("httpapi: hijack: %T has no descriptor", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("httpapi: hijack: %w", err)
	}
	return &hijacked{conn: conn, raw: raw, header: header}, nil
}

// hijackable reports whether the connection behind w can be taken. gin's
// writer says it can whatever it wraps, and panics in Hijack when the
// writer it wraps cannot (HTTP/2, a test recorder): the innermost decides.
func hijackable(w http.ResponseWriter) bool {
	for {
		switch u := w.(type) {
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		case http.Hijacker:
			return true
		default:
			return false
		}
	}
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
	h.head, h.code = head.Bytes(), code
	h.header = nil // sent: not kept for the stream's hour
}

func (h *hijacked) Write(b []byte) (int, error) {
	if h.head != nil {
		bufs := net.Buffers{h.head, b} // one writev, no copy of the replay
		n := int64(len(h.head))
		h.head = nil
		m, err := bufs.WriteTo(h.conn)
		h.written += m
		if m >= n {
			h.status = h.code
		}
		if err != nil {
			return int(max(m-n, 0)), err
		}
		return len(b), nil
	}
	n, err := h.conn.Write(b)
	h.written += int64(n)
	return n, err
}

// TryWrite writes what the socket takes now and never waits (the
// descriptor is non-blocking: EAGAIN is a write of nothing). It goes
// through the connection's own lock, so it fails once conn is closed.
func (h *hijacked) TryWrite(b []byte) (int, error) {
	if h.head != nil {
		return 0, nil // the head goes with a blocking Write
	}
	n, werr := 0, error(nil)
	err := h.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				if err != syscall.EAGAIN {
					werr = err
				}
				break
			}
			if m == 0 {
				break
			}
			n += m
		}
		return true // never wait in the poller
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// Flush does nothing: every Write goes to the socket.
func (h *hijacked) Flush() {}

func (h *hijacked) SetWriteDeadline(t time.Time) error { return h.conn.SetWriteDeadline(t) }

// closeUnanswered closes the connection of w without a response, where
// net/http would otherwise send an empty 200.
func closeUnanswered(w http.ResponseWriter) {
	if !hijackable(w) {
		return
	}
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
	}
}
