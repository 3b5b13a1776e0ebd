package httpapi

import (
	"net"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair: the server side and the client.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// waitFor runs Wait(deadline) and reports what it returned and how long it took.
func waitFor(w *connWaiter, deadline time.Time) (bool, time.Duration) {
	start := time.Now()
	gone := w.Wait(deadline)
	return gone, time.Since(start)
}

func TestConnWaiter(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	w := &connWaiter{conn: server}

	// The deadline is the stream's timer.
	if gone, took := waitFor(w, time.Now().Add(100*time.Millisecond)); gone || took < 90*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Wait until a deadline 100ms away: gone=%v after %s", gone, took)
	}

	// A Wake before Wait is remembered; the next Wait blocks again.
	w.Wake()
	if gone, took := waitFor(w, time.Now().Add(time.Hour)); gone || took > 50*time.Millisecond {
		t.Fatalf("Wait after Wake: gone=%v after %s, want at once", gone, took)
	}
	if gone, took := waitFor(w, time.Now().Add(100*time.Millisecond)); gone || took < 90*time.Millisecond {
		t.Fatalf("second Wait after one Wake: gone=%v after %s, want the full 100ms", gone, took)
	}

	// A Wake ends a blocked Wait long before its deadline, even a deadline
	// that is already armed.
	deadline := time.Now().Add(time.Hour)
	for range 3 {
		time.AfterFunc(50*time.Millisecond, w.Wake)
		if gone, took := waitFor(w, deadline); gone || took > time.Second {
			t.Fatalf("Wait woken after 50ms: gone=%v after %s", gone, took)
		}
	}

	// The client leaving ends the wait with gone.
	time.AfterFunc(50*time.Millisecond, func() { _ = client.Close() })
	if gone, took := waitFor(w, time.Now().Add(time.Hour)); !gone || took > time.Second {
		t.Fatalf("Wait when the client closes: gone=%v after %s", gone, took)
	}
}

// A client that sends bytes after its request is not an SSE client: gone.
func TestConnWaiterClientSends(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	w := &connWaiter{conn: server}
	time.AfterFunc(50*time.Millisecond, func() { _, _ = client.Write([]byte("x")) })
	if gone, _ := waitFor(w, time.Now().Add(5*time.Second)); !gone {
		t.Fatal("Wait returned without gone when the client sent a byte")
	}
}
