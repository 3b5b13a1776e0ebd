package hangup

import (
	"testing"
	"time"
)

// Close stops the epoll goroutine and releases the instance: a watch
// registered before is canceled quietly, and a new one is refused.
func TestEpollClose(t *testing.T) {
	t.Parallel()
	e, err := NewEpoll()
	if err != nil {
		t.Fatal(err)
	}
	server, client := tcpPair(t)
	fired, cancel := watch(t, e, server)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the epoll goroutine did not return after Close")
	}
	_ = client.Close()
	expect(t, fired, false, "a hang-up after Close")
	cancel() // after Close: does nothing
	other, _ := tcpPair(t)
	if _, err := e.Watch(other, func() {}); err == nil {
		t.Fatal("Watch after Close succeeded")
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
