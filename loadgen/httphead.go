package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
)

// readHead's lengths of a body that lasts until the connection closes
// (an event stream), and of one sent in chunks.
const (
	untilClose = -1
	chunked    = -2
)

// readHead reads a response's status line and headers, keeping only what
// loadgen needs: the status, the body's length (or chunked, or until the
// connection closes) and whether the server closes. It is a few string
// comparisons where http.ReadResponse builds a header map: a third of
// loadgen's publishing CPU, taken from the server measured.
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
	length = untilClose
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
