package httpapi

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns a hijacked writer over a real loopback connection and
// the client's end.
func tcpPair(t *testing.T) (*hijacked, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	raw, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return &hijacked{conn: server, raw: raw}, client
}

// TryWrite takes what the socket takes and returns at once when it is
// full, without an error; the client then reads every byte in order.
func TestTryWriteNeverWaits(t *testing.T) {
	t.Parallel()
	h, client := tcpPair(t)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var sent bytes.Buffer
	filled := make(chan error, 1)
	go func() { // a TryWrite that waits never returns here: the client does not read
		for {
			n, err := h.TryWrite(chunk)
			if err != nil {
				filled <- err
				return
			}
			sent.Write(chunk[:n])
			if n < len(chunk) {
				filled <- nil
				return
			}
		}
	}()
	select {
	case err := <-filled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TryWrite did not return with the socket full: it waited")
	}
	got := make([]byte, sent.Len())
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Fatal("the client read other bytes than TryWrite reported written")
	}
}

// A closed connection fails TryWrite instead of writing to whatever
// reuses its descriptor; so does an expired write deadline, which is why
// streams clear theirs before writing without waiting.
func TestTryWriteFailsWhenClosedOrPastDeadline(t *testing.T) {
	t.Parallel()
	h, _ := tcpPair(t)
	if err := h.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.TryWrite([]byte("x")); err == nil {
		t.Fatal("TryWrite succeeded past the write deadline")
	}
	if err := h.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.TryWrite([]byte("x")); n != 1 || err != nil {
		t.Fatalf("TryWrite = %d, %v without a deadline", n, err)
	}
	h.conn.Close()
	if _, err := h.TryWrite([]byte("x")); err == nil {
		t.Fatal("TryWrite succeeded on a closed connection")
	}
}
