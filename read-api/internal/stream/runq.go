package stream

import (
	"runtime"
	"sync"
)

// runQueue runs the rounds of woken streams on one goroutine per core, in
// the order the streams were woken. A broadcast wakes every stream of the
// pod at once: with a goroutine per round, ten thousand runnable
// goroutines sat in the scheduler's FIFO queue ahead of the goroutine
// reading Redis, so under load messages waited unread in its socket
// instead of joining the streams' queues, where a round would have
// written them together (docs/bench.md, "run queue"). With a few workers
// that yield between batches, the reader runs soon after each batch and
// each round writes everything queued by then.
//
// Workers only run rounds that cannot block (see Detached.runInline); a
// round that must wait, for Redis or a full socket, moves to a goroutine
// of its own.
type runQueue struct {
	start  sync.Once
	mu     sync.Mutex
	ready  []*Detached
	head   int           // ready[head:] are waiting
	parked int           // workers waiting for work
	unpark chan struct{} // one token per parked worker to wake
}

// runBatch is how many rounds a worker runs before it yields.
const runBatch = 32

// runq is the process's run queue; its workers start on first use.
var runq runQueue

// push queues d's next round.
func (q *runQueue) push(d *Detached) {
	q.start.Do(func() {
		workers := runtime.GOMAXPROCS(0)
		q.unpark = make(chan struct{}, workers)
		for range workers {
			go q.work()
		}
	})
	q.mu.Lock()
	q.ready = append(q.ready, d)
	wake := q.parked > 0
	if wake {
		q.parked--
	}
	q.mu.Unlock()
	if wake {
		q.unpark <- struct{}{}
	}
}

// take waits for work and returns up to runBatch streams.
func (q *runQueue) take(batch []*Detached) []*Detached {
	q.mu.Lock()
	for q.head == len(q.ready) {
		q.parked++
		q.mu.Unlock()
		<-q.unpark
		q.mu.Lock()
	}
	n := min(len(q.ready)-q.head, runBatch)
	batch = append(batch[:0], q.ready[q.head:q.head+n]...)
	clear(q.ready[q.head : q.head+n])
	q.head += n
	if q.head == len(q.ready) { // empty: reuse the slice from its start
		q.ready, q.head = q.ready[:0], 0
		if cap(q.ready) > 1<<16 {
			q.ready = nil // a burst is over: do not keep its memory
		}
	}
	q.mu.Unlock()
	return batch
}

func (q *runQueue) work() {
	batch := make([]*Detached, 0, runBatch)
	for {
		batch = q.take(batch)
		for _, d := range batch {
			d.runInline()
		}
		full := len(batch) == runBatch
		clear(batch)
		if full {
			// More may be queued: let the goroutines that feed the
			// streams (the Redis reader, the hub's fan-out, timers) run
			// first. A worker that emptied the queue parks in take.
			runtime.Gosched()
		}
	}
}
