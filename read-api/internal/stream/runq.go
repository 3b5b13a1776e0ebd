package stream

import (
	"runtime"
	"sync"
)

// RunQueue runs the rounds of woken streams on one goroutine per core, in
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
// of its own. The pod owns its queue: NewRunQueue starts the workers,
// Close stops them.
type RunQueue struct {
	mu      sync.Mutex
	ready   []*Detached
	head    int           // ready[head:] are waiting
	parked  int           // workers waiting for work
	closed  bool          // workers exit; rounds run on goroutines of their own
	unpark  chan struct{} // one token per parked worker to wake
	workers sync.WaitGroup
}

// runBatch is how many rounds a worker runs before it yields.
const runBatch = 32

// NewRunQueue starts a run queue's workers, one per core.
func NewRunQueue() *RunQueue {
	workers := runtime.GOMAXPROCS(0)
	q := &RunQueue{unpark: make(chan struct{}, workers)}
	for range workers {
		q.workers.Go(q.work)
	}
	return q
}

// Close stops the workers and waits for them. Rounds queued or woken
// afterwards run on goroutines of their own, so a stream that outlives
// the queue still ends.
func (q *RunQueue) Close() {
	q.mu.Lock()
	q.closed = true
	rest := q.ready[q.head:]
	q.ready, q.head = nil, 0
	parked := q.parked
	q.parked = 0
	q.mu.Unlock()
	for range parked {
		q.unpark <- struct{}{}
	}
	for _, d := range rest {
		go d.rounds()
	}
	q.workers.Wait()
}

// push queues d's next round.
func (q *RunQueue) push(d *Detached) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		go d.rounds()
		return
	}
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

// take waits for work and returns up to runBatch streams; none once the
// queue is closed.
func (q *RunQueue) take(batch []*Detached) []*Detached {
	q.mu.Lock()
	for q.head == len(q.ready) {
		if q.closed {
			q.mu.Unlock()
			return batch[:0]
		}
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

func (q *RunQueue) work() {
	batch := make([]*Detached, 0, runBatch)
	for {
		batch = q.take(batch)
		if len(batch) == 0 {
			return // closed
		}
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
