package redisbus

import (
	"context"
	"sync"
	"time"

	"notify/pkg/notification"
)

// Concurrent Publish calls share round trips: while maxInFlight batches are
// on their way to Redis, new calls queue, and the next batch takes them all
// in one MULTI/EXEC. Under load this turns one network write and read per
// request into one per batch, in write-api and in Redis; a lone call goes
// out at once.
const (
	maxInFlight   = 2
	maxBatchItems = 1000
)

// call is one Publish waiting for its batch.
type call struct {
	ctx   context.Context
	items []Item
	pos   []notification.Position
	err   error
	done  chan struct{}
}

type coalescer struct {
	mu       sync.Mutex
	queue    []*call
	inFlight int
}

// submit queues c and, if a batch slot is free, runs the queue in the
// caller's goroutine; c.done is closed once c has its result.
func (p *Publisher) submit(c *call) {
	co := &p.co
	co.mu.Lock()
	co.queue = append(co.queue, c)
	if co.inFlight >= maxInFlight {
		co.mu.Unlock()
		return // a running batch takes it next
	}
	co.inFlight++
	batch := co.take()
	co.mu.Unlock()
	p.runBatches(batch)
}

// take removes up to maxBatchItems items' worth of calls from the queue.
// Called with mu held.
func (co *coalescer) take() []*call {
	n, items := 0, 0
	for n < len(co.queue) && (n == 0 || items+len(co.queue[n].items) <= maxBatchItems) {
		items += len(co.queue[n].items)
		n++
	}
	batch := co.queue[:n:n]
	co.queue = co.queue[n:]
	if len(co.queue) == 0 {
		co.queue = nil
	}
	return batch
}

// runBatches publishes batch and hands its slot to the calls that queued
// meanwhile, on a new goroutine so the caller can answer its client.
func (p *Publisher) runBatches(batch []*call) {
	p.publishBatch(batch)
	co := &p.co
	co.mu.Lock()
	if len(co.queue) == 0 {
		co.inFlight--
		co.mu.Unlock()
		return
	}
	next := co.take()
	co.mu.Unlock()
	go p.runBatches(next)
}

// publishBatch runs the calls still wanted as one publish and gives each
// its positions, or the first error among its items.
func (p *Publisher) publishBatch(batch []*call) {
	var items []Item
	live := batch[:0:0]
	var deadline time.Time
	unbounded := false
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil { // gave up before it was sent: nothing published
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
		items = append(items, c.items...)
		if d, ok := c.ctx.Deadline(); !ok {
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
	pos, errs := p.publish(ctx, items)
	at := 0
	for _, c := range live {
		n := len(c.items)
		c.pos = pos[at : at+n : at+n]
		for i, err := range errs[at : at+n] {
			if err != nil {
				c.pos, c.err = nil, wrapItemErr(c.items[i].Topic, err)
				break
			}
		}
		at += n
		close(c.done)
	}
}
