package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// pubConn is one publisher's keep-alive HTTP/1.1 connection: a request is
// one write of preformatted bytes and the response is read from a small
// buffer. net/http's client spends two goroutines and several channel
// handoffs per request; on a 2-core machine shared with the server that
// cost is taken from the server being measured (as wrk avoids).
type pubConn struct {
	host string // host:port
	auth string // Authorization header line, or ""
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func newPubConn(t Target) (*pubConn, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: publish URL: %w", err)
	}
	c := &pubConn{host: u.Host}
	if t.Token != "" {
		c.auth = "Authorization: Bearer " + t.Token + "\r\n"
	}
	return c, nil
}

// post sends body to path and returns the response status; any error
// closes the connection and the next post dials again.
func (c *pubConn) post(path string, body []byte, idempotencyKey string) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.host, 10*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 4096)
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nContent-Type: application/json\r\n"...)
	c.req = append(c.req, c.auth...)
	if idempotencyKey != "" {
		c.req = append(c.req, "Idempotency-Key: "...)
		c.req = append(c.req, idempotencyKey...)
		c.req = append(c.req, "\r\n"...)
	}
	c.req = append(c.req, "Content-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	status, err := c.exchange()
	if err != nil {
		c.close()
	}
	return status, err
}

func (c *pubConn) exchange() (int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	status, length, closing, err := readHead(c.br)
	if err != nil {
		return 0, err
	}
	switch length {
	case untilClose:
		err = fmt.Errorf("loadgen: status %d without a body length", status)
	case chunked:
		err = discardChunks(c.br)
	default:
		_, err = c.br.Discard(length)
	}
	if err != nil {
		return 0, err
	}
	if closing {
		c.close()
	}
	return status, nil
}

func (c *pubConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
