// Package hangup tells when the client of a connection that nobody reads
// closes it. An SSE client sends nothing after its request, so its
// connection becomes readable only when it leaves (or misbehaves): on
// Linux one epoll instance and one goroutine watch every stream's
// connection, so that a stream at rest needs no goroutine of its own.
package hangup

import (
	"net"
	"sync"
)

// Watcher reports hang-ups.
type Watcher interface {
	// Watch calls onHangup once, on a goroutine of the watcher's, when
	// conn becomes readable: the client closed it, reset it, or sent
	// bytes, which no SSE client does. onHangup must not block. The
	// returned cancel must be called before conn is closed; once it
	// returned, onHangup is not called.
	Watch(conn net.Conn, onHangup func()) (cancel func(), err error)
}

// Closer is a watcher its owner stops: Close releases what it holds. Watch
// must not be called after Close.
type Closer interface {
	Watcher
	Close() error
}

// New starts a watcher: epoll on Linux, a goroutine per connection
// elsewhere. Its owner closes it.
func New() (Closer, error) { return newPlatform() }

// Reads is the portable watcher: a goroutine per connection, parked in a
// one-byte read.
type Reads struct{}

var _ Closer = Reads{}

// Close does nothing: each goroutine ends when its connection is closed.
func (Reads) Close() error { return nil }

func (Reads) Watch(conn net.Conn, onHangup func()) (func(), error) {
	var mu sync.Mutex
	canceled := false
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:]) // returns when the client leaves or sends, or conn is closed
		mu.Lock()
		defer mu.Unlock()
		if !canceled {
			onHangup()
		}
	}()
	return func() {
		mu.Lock()
		canceled = true
		mu.Unlock()
	}, nil
}
