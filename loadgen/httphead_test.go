package main

import (
	"bufio"
	"strings"
	"testing"
)

// readHead takes what a keep-alive publisher needs from net/http's
// responses and refuses what it cannot frame.
func TestReadHead(t *testing.T) {
	t.Parallel()
	two := "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\ncontent-length: 9\r\n\r\n{\"id\":1}\nHTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(two))
	status, length, closing, err := readHead(br)
	if err != nil || status != 202 || length != 9 || closing {
		t.Fatalf("first: %d %d %v %v", status, length, closing, err)
	}
	if _, err := br.Discard(length); err != nil {
		t.Fatal(err)
	}
	status, length, closing, err = readHead(br)
	if err != nil || status != 503 || length != 0 || !closing {
		t.Fatalf("second: %d %d %v %v", status, length, closing, err)
	}
	br = bufio.NewReader(strings.NewReader("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n3;x=y\r\nfgh\r\n0\r\n\r\nnext"))
	if status, length, _, err := readHead(br); err != nil || status != 202 || length != chunked {
		t.Fatalf("chunked: %d %d %v", status, length, err)
	}
	if err := discardChunks(br); err != nil {
		t.Fatal(err)
	}
	if rest, _ := br.Peek(4); string(rest) != "next" {
		t.Fatalf("after the chunks: %q, want the next response", rest)
	}
	br = bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 2000\n\n"))
	if status, length, closing, err := readHead(br); err != nil || status != 200 || length != untilClose || !closing {
		t.Fatalf("event stream: %d %d %v %v", status, length, closing, err)
	}
	if rest, _ := br.Peek(6); string(rest) != "retry:" {
		t.Fatalf("the stream's body starts with %q", rest)
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.0 20x\r\n\r\n",
		"HTTP/1.1 202 Accepted\r\nContent-Length: -1\r\n\r\n",
	} {
		if _, _, _, err := readHead(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
