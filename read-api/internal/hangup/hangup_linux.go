package hangup

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

func newPlatform() (Watcher, error) { return NewEpoll() }

// Epoll watches connections with one epoll instance and one goroutine.
// Registrations carry an id, never the descriptor, so an event that races
// with a connection's close cannot be taken for a newer connection that
// reused the descriptor number.
type Epoll struct {
	fd   int
	file *os.File // fd, in Go's own poller
	mu   sync.Mutex
	next uint64
	subs map[uint64]func()
}

// NewEpoll starts a watcher; it lives as long as the process.
func NewEpoll() (*Epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hangup: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil { // so that os.NewFile polls it
		_ = unix.Close(fd)
		return nil, fmt.Errorf("hangup: %w", err)
	}
	// The goroutine waits for the epoll instance to become readable in
	// Go's poller, not in a blocking epoll_wait: a goroutine in a system
	// call keeps its P, and the rounds it starts would sit in that P's run
	// queue until sysmon takes the P away (docs/bench.md).
	e := &Epoll{fd: fd, file: os.NewFile(uintptr(fd), "hangup-epoll"), subs: map[uint64]func(){}}
	rc, err := e.file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hangup: %w", err)
	}
	go e.loop(rc)
	return e, nil
}

func (e *Epoll) Watch(conn net.Conn, onHangup func()) (func(), error) {
	rc, err := rawConn(conn)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.next++
	id := e.next
	e.subs[id] = onHangup
	e.mu.Unlock()
	// One-shot: after it fires the descriptor stays registered but quiet
	// until cancel removes it. A connection already closed by the client
	// reports at once.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(id), Pad: int32(id >> 32)}
	var addErr error
	if err := rc.Control(func(fd uintptr) { addErr = unix.EpollCtl(e.fd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err == nil {
		err = addErr
	}
	if err != nil {
		e.forget(id)
		return nil, fmt.Errorf("hangup: epoll_ctl add: %w", err)
	}
	return func() {
		e.forget(id)
		// Closing the connection would remove it too; removing it first
		// keeps the interest list exact while the close is pending.
		_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(e.fd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	}, nil
}

func (e *Epoll) forget(id uint64) {
	e.mu.Lock()
	delete(e.subs, id)
	e.mu.Unlock()
}

func (e *Epoll) loop(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var waitErr error
		err := rc.Read(func(fd uintptr) bool {
			n, waitErr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || waitErr != nil && !errors.Is(waitErr, unix.EINTR)
		})
		if err == nil {
			err = waitErr
		}
		if err != nil {
			panic(fmt.Sprintf("hangup: epoll_wait: %v", err)) // only a bug can get here (EBADF, EFAULT, EINVAL)
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			// Called under the lock, so that once cancel returned it is
			// not called any more; onHangup must not block.
			e.mu.Lock()
			if f := e.subs[id]; f != nil {
				delete(e.subs, id)
				f()
			}
			e.mu.Unlock()
		}
	}
}

// rawConn is the file descriptor behind conn, for watchers that poll it.
func rawConn(conn net.Conn) (syscall.RawConn, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("hangup: %T has no file descriptor", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hangup: %w", err)
	}
	return rc, nil
}
