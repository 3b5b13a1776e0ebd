package hangup

import (
	"net"
	"sync/atomic"
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

// eachWatcher runs test in parallel for every watcher, with a fresh
// connection pair.
func eachWatcher(t *testing.T, test func(t *testing.T, w Watcher, server, client net.Conn)) {
	t.Helper()
	for name, w := range map[string]Watcher{"platform": newWatcher(t), "reads": Reads{}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			server, client := tcpPair(t)
			test(t, w, server, client)
		})
	}
}

// newWatcher is the platform's watcher, closed when the test ends.
func newWatcher(t *testing.T) Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return w
}

// watch registers a connection and returns a channel that receives once
// per onHangup call.
func watch(t *testing.T, w Watcher, conn net.Conn) (<-chan struct{}, func()) {
	t.Helper()
	fired := make(chan struct{}, 4)
	cancel, err := w.Watch(conn, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	return fired, cancel
}

func expect(t *testing.T, fired <-chan struct{}, want bool, what string) {
	t.Helper()
	wait := 300 * time.Millisecond
	if want {
		wait = 3 * time.Second
	}
	select {
	case <-fired:
		if !want {
			t.Fatalf("%s: onHangup called", what)
		}
	case <-time.After(wait):
		if want {
			t.Fatalf("%s: onHangup not called within %s", what, wait)
		}
	}
}

func TestClientClosing(t *testing.T) {
	t.Parallel()
	eachWatcher(t, func(t *testing.T, w Watcher, server, client net.Conn) {
		fired, cancel := watch(t, w, server)
		defer cancel()
		expect(t, fired, false, "an open, quiet client")
		_ = client.Close()
		expect(t, fired, true, "the client closed")
		expect(t, fired, false, "a second call") // once only
	})
}

// A client that sends bytes after its request is not an SSE client.
func TestClientSending(t *testing.T) {
	t.Parallel()
	eachWatcher(t, func(t *testing.T, w Watcher, server, client net.Conn) {
		fired, cancel := watch(t, w, server)
		defer cancel()
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		expect(t, fired, true, "the client sent a byte")
	})
}

// A client gone before the watch began is reported at once.
func TestClientGoneBeforeWatch(t *testing.T) {
	t.Parallel()
	eachWatcher(t, func(t *testing.T, w Watcher, server, client net.Conn) {
		_ = client.Close()
		time.Sleep(50 * time.Millisecond)
		fired, cancel := watch(t, w, server)
		defer cancel()
		expect(t, fired, true, "a client closed before Watch")
	})
}

// After cancel, neither the client leaving nor the server closing the
// connection calls onHangup.
func TestCancel(t *testing.T) {
	t.Parallel()
	eachWatcher(t, func(t *testing.T, w Watcher, server, client net.Conn) {
		fired, cancel := watch(t, w, server)
		cancel()
		_ = client.Close()
		_ = server.Close()
		expect(t, fired, false, "after cancel")
	})
}

// Many connections share the epoll watcher: each hang-up reaches its own
// callback and no other.
func TestManyConnections(t *testing.T) {
	t.Parallel()
	w := newWatcher(t)
	const n = 200
	var calls [n]atomic.Int32
	clients := make([]net.Conn, n)
	cancels := make([]func(), n)
	for i := range n {
		server, client := tcpPair(t)
		clients[i] = client
		var err error
		cancels[i], err = w.Watch(server, func() { calls[i].Add(1) })
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 { // every other client leaves
		_ = clients[i].Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < n; i += 2 {
		for calls[i].Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for i := range n {
		if got, want := calls[i].Load(), int32(1-i%2); got != want {
			t.Errorf("connection %d: onHangup called %d times, want %d", i, got, want)
		}
		cancels[i]()
	}
}
