package httpserver

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"notify/pkg/problem"
)

// net/http answers some requests itself, before any handler runs, in plain
// text written straight to the connection: 431 when the head passes
// MaxHeaderBytes, 400 for a malformed request line or header, 501 for an
// unknown transfer coding, 505 for an unsupported HTTP version, and 417
// for an Expect other than 100-continue. http.Server has no hook for them,
// so the connections Serve hands to net/http recognise those exact writes
// and send the same status as problem+json instead, like every other error.

// Shapes of net/http's own answers: a status line, then exactly these
// headers, then the status text (and a reason) as the body.
const (
	rawStatusPrefix  = "HTTP/1.1 "
	rawErrorHeaders  = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	rawExpectFailure = "HTTP/1.1 417 "
)

// rawDetails are the details sent when net/http gives no reason.
var rawDetails = map[int]string{
	http.StatusBadRequest:                  "malformed request line or headers",
	http.StatusRequestHeaderFieldsTooLarge: "the request line and headers are too large",
	http.StatusNotImplemented:              "unsupported Transfer-Encoding",
	http.StatusHTTPVersionNotSupported:     "unsupported HTTP version",
	http.StatusExpectationFailed:           "only Expect: 100-continue is supported",
}

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn is an accepted connection whose writes of net/http's own
// error answers become problems.
type problemConn struct{ net.Conn }

func (c *problemConn) Write(b []byte) (int, error) {
	if resp, ok := rewriteRawError(b); ok {
		if _, err := c.Conn.Write(resp); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite keeps net/http's half-close after a 431, which lets a client
// still sending its head read the answer.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Unwrap returns the accepted connection behind one of Serve's, for a
// handler that takes the connection over (hijack) and needs its
// descriptor or its vectored writes.
func Unwrap(c net.Conn) net.Conn {
	if p, ok := c.(*problemConn); ok {
		return p.Conn
	}
	return c
}

// rewriteRawError returns the problem+json answer replacing b when b is
// one of net/http's own error answers.
func rewriteRawError(b []byte) ([]byte, bool) {
	const codeAt = len(rawStatusPrefix)
	if len(b) < codeAt+3 || string(b[:codeAt]) != rawStatusPrefix || (b[codeAt] != '4' && b[codeAt] != '5') {
		return nil, false
	}
	status, err := strconv.Atoi(string(b[codeAt : codeAt+3]))
	if err != nil {
		return nil, false
	}
	detail := rawDetails[status]
	lineEnd := bytes.IndexByte(b, '\r')
	switch {
	case lineEnd > 0 && bytes.HasPrefix(b[lineEnd:], []byte(rawErrorHeaders)):
		// net/http's reasons are fixed strings, never the client's bytes.
		if _, reason, ok := strings.Cut(string(b[lineEnd+len(rawErrorHeaders):]), ": "); ok {
			detail = reason
		}
	case bytes.HasPrefix(b, []byte(rawExpectFailure)):
	default:
		return nil, false
	}
	code, ok := problem.ForStatus(status)
	if !ok {
		return nil, false
	}
	status, header, body := problem.Response(problem.New(code, "%s", detail))
	header.Set("Connection", "close")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	_ = header.Write(&out)
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes(), true
}
