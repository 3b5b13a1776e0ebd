package redisbus

import (
	"context"
	"sync"
	"time"
)

// A coalescer lets concurrent calls share round trips: while maxInFlight
// batches are on their way to Redis, new calls queue, and the next batch
// takes them all in one pipeline. Under load this turns one network write
// and read per request into one per batch, in the service and in Redis
// (a burst of publishes, a reconnect storm reading positions); a lone call
// goes out at once.
const (
	maxInFlight   = 2
	maxBatchItems = 1000
)

type coalescer[In, Out any] struct {
	// run does a batch: one result or error per input.
	run func(ctx context.Context, in []In) ([]Out, []error)

	mu       sync.Mutex
	queue    []*job[In, Out]
	inFlight int
}

// job is one call waiting for its batch.
type job[In, Out any] struct {
	ctx  context.Context
	in   []In
	out  []Out
	err  error
	done chan struct{}
}

// do runs in as part of a batch and returns its results, or the first
// error among them.
func (co *coalescer[In, Out]) do(ctx context.Context, in []In) ([]Out, error) {
	j := &job[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	co.mu.Lock()
	co.queue = append(co.queue, j)
	if co.inFlight < maxInFlight {
		co.inFlight++
		batch := co.take()
		co.mu.Unlock()
		// On its own goroutine, so the caller leaves at its deadline even
		// when Redis hangs and the client's read outlasts it.
		go co.runBatches(batch)
	} else {
		co.mu.Unlock() // a running batch takes it next
	}
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// take removes up to maxBatchItems inputs' worth of jobs from the queue.
// Called with mu held.
func (co *coalescer[In, Out]) take() []*job[In, Out] {
	n, items := 0, 0
	for n < len(co.queue) && (n == 0 || items+len(co.queue[n].in) <= maxBatchItems) {
		items += len(co.queue[n].in)
		n++
	}
	batch := co.queue[:n:n]
	co.queue = co.queue[n:]
	if len(co.queue) == 0 {
		co.queue = nil
	}
	return batch
}

// runBatches runs batch, then the jobs that queued meanwhile, until the
// queue is empty.
func (co *coalescer[In, Out]) runBatches(batch []*job[In, Out]) {
	for {
		co.runBatch(batch)
		co.mu.Lock()
		if len(co.queue) == 0 {
			co.inFlight--
			co.mu.Unlock()
			return
		}
		batch = co.take()
		co.mu.Unlock()
	}
}

// runBatch runs the jobs still wanted as one call and gives each its
// results, or the first error among its inputs.
func (co *coalescer[In, Out]) runBatch(batch []*job[In, Out]) {
	var in []In
	live := batch[:0:0]
	var deadline time.Time
	unbounded := false
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil { // gave up before it was sent: nothing done
			j.err = err
			close(j.done)
			continue
		}
		live = append(live, j)
		in = append(in, j.in...)
		if d, ok := j.ctx.Deadline(); !ok {
			unbounded = true
		} else if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch outlives any one caller giving up: it ends by the latest
	// deadline among them.
	ctx := context.WithoutCancel(live[0].ctx)
	if !unbounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	out, errs := co.run(ctx, in)
	at := 0
	for _, j := range live {
		n := len(j.in)
		j.out = out[at : at+n : at+n]
		for _, err := range errs[at : at+n] {
			if err != nil {
				j.out, j.err = nil, err
				break
			}
		}
		at += n
		close(j.done)
	}
}
