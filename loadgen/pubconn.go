package main

import (
	"bufio"
	"bytes"
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
func (c *pubConn) post(path string, body []byte) (int, error) {
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
	if length == chunked {
		err = discardChunks(c.br)
	} else {
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

// chunked is readHead's length of a body sent in chunks.
const chunked = -2

// readHead reads a response's status line and headers, keeping only what
// a keep-alive client needs: the status, the body's length (or chunked)
// and whether the server closes. It is a few string comparisons where
// http.ReadResponse builds a header map: a third of loadgen's publishing
// CPU, taken from the server measured.
func readHead(br *bufio.Reader) (status, length int, closing bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, false, fmt.Errorf("loadgen: bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length = -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, 0, false, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, 0, false, fmt.Errorf("loadgen: Transfer-Encoding %q", value)
			}
			length = chunked
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	if length == -1 {
		return 0, 0, false, fmt.Errorf("loadgen: status %d without a body length", status)
	}
	return status, length, closing, nil
}

// discardChunks reads a chunked body to its end (no trailers expected).
func discardChunks(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("loadgen: bad chunk size %q", line)
		}
		if _, err := br.Discard(int(n) + 2); err != nil { // data and its CRLF
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

func (c *pubConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
