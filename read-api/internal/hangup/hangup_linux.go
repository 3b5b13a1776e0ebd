package hangup

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Epoll watches connections with one epoll instance and one goroutine.
// Registrations carry an id, never the descriptor, so an event that races
// with a connection's close cannot be taken for a newer connection that
// reused the descriptor number.
//
// The epoll descriptor is only used through its file's RawConn, so that
// after Close no call reaches a descriptor number reused since.
type Epoll struct {
	file     *os.File        // the epoll instance, in Go's own poller
	rc       syscall.RawConn // file's
	mu       sync.Mutex
	next     uint64
	subs     map[uint64]func()
	watching atomic.Int64 // descriptors in the interest list
	closed   atomic.Bool
	done     chan struct{} // closed when the loop returned
}

var _ Closer = (*Epoll)(nil)

func newPlatform() (Closer, error) { return NewEpoll() }

// NewEpoll starts a watcher and its goroutine; Close stops them.
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
	e := &Epoll{file: os.NewFile(uintptr(fd), "hangup-epoll"), subs: map[uint64]func(){}, done: make(chan struct{})}
	rc, err := e.file.SyscallConn()
	if err != nil {
		_ = e.file.Close()
		return nil, fmt.Errorf("hangup: %w", err)
	}
	e.rc = rc
	go e.loop()
	return e, nil
}

// Close stops the goroutine, waits for it and closes the epoll instance.
// Cancels called afterwards do nothing.
func (e *Epoll) Close() error {
	if e.closed.Swap(true) {
		<-e.done
		return nil
	}
	err := e.file.Close() // wakes the loop's wait
	<-e.done
	if err != nil {
		return fmt.Errorf("hangup: close epoll: %w", err)
	}
	return nil
}

// ctl runs epoll_ctl on the instance, unless it is closed.
func (e *Epoll) ctl(op int, fd int, ev *unix.EpollEvent) error {
	var ctlErr error
	if err := e.rc.Control(func(efd uintptr) { ctlErr = unix.EpollCtl(int(efd), op, fd, ev) }); err != nil {
		return err
	}
	return ctlErr
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
	if err = rc.Control(func(fd uintptr) { addErr = e.ctl(unix.EPOLL_CTL_ADD, int(fd), &ev) }); err == nil {
		err = addErr // not shadowed: a failed add must reach the caller
	}
	if err != nil {
		e.forget(id)
		return nil, fmt.Errorf("hangup: epoll_ctl add: %w", err)
	}
	e.watching.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() { e.watching.Add(-1) })
		e.forget(id)
		// Closing the connection would remove it too; removing it first
		// keeps the interest list exact while the close is pending.
		_ = rc.Control(func(fd uintptr) { _ = e.ctl(unix.EPOLL_CTL_DEL, int(fd), nil) })
	}, nil
}

// Watching is how many connections are registered: watched, or fired and
// not canceled yet.
func (e *Epoll) Watching() int { return int(e.watching.Load()) }

func (e *Epoll) forget(id uint64) {
	e.mu.Lock()
	delete(e.subs, id)
	e.mu.Unlock()
}

func (e *Epoll) loop() {
	defer close(e.done)
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var waitErr error
		err := e.rc.Read(func(fd uintptr) bool {
			n, waitErr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || waitErr != nil && !errors.Is(waitErr, unix.EINTR)
		})
		if err == nil {
			err = waitErr
		}
		if err != nil && e.closed.Load() {
			return
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
