package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Target is where notifications go: write-api, or the baseline's own
// publish endpoint (same JSON bodies, no token).
type Target struct {
	URL      string
	Baseline bool
	Token    string
}

// PubConfig shapes a publish run.
type PubConfig struct {
	Topics   []string
	Rate     float64       // notifications/s; 0: as fast as the workers go
	Duration time.Duration //
	Batch    int           // notifications per request; <= 1: single requests
	Conc     int           // concurrent requests
	Seq      bool          // number each topic's notifications (n) for gap checks
	SeqStart []int64       // per topic: n already used (continue a sequence)
	Linger   time.Duration // paced batches: wait up to this long for a batch to fill
	Keys     int           // > 0: notification n carries key "k<(n-1) mod Keys>" (keyed state)
	// Retry > 0: each request carries an Idempotency-Key, and one whose
	// outcome is unknown (503, 409, a broken connection) is sent again,
	// same body and key, for up to this long: published once, never lost.
	Retry time.Duration
}

// PubResult is what a publish run achieved.
type PubResult struct {
	Accepted int64         // notifications answered 202
	Errors   int64         // failed requests
	Missed   int64         // paced notifications not sent: publishers were busy
	Retried  int64         // requests sent again with their Idempotency-Key
	Elapsed  time.Duration //
	LastN    []int64       // per topic: last n accepted
}

type job struct {
	topic int
	n     int64
}

// Publish runs cfg against t. Topic i is always published by the same
// goroutine, so each topic's notifications reach Redis in order.
func Publish(ctx context.Context, t Target, cfg PubConfig) PubResult {
	cfg.Conc = max(cfg.Conc, 1)
	cfg.Batch = max(cfg.Batch, 1)
	var accepted, errs, missed, retried atomic.Int64
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // Idempotency-Keys of this run
	lastN := make([]atomic.Int64, len(cfg.Topics))
	seq := make([]int64, len(cfg.Topics))
	copy(seq, cfg.SeqStart)
	for i, n := range cfg.SeqStart { // a topic this run does not reach keeps its last n
		lastN[i].Store(n)
	}
	chans := make([]chan job, cfg.Conc)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.Conc {
		chans[w] = make(chan job, 4096)
		wg.Go(func() {
			pc, err := newPubConn(t)
			if err != nil {
				errs.Add(1)
				return
			}
			defer pc.close()
			var batch []job
			reqs := 0
			next := w % len(cfg.Topics) // unpaced: this worker's own topics
			for {
				batch = batch[:0]
				if cfg.Rate > 0 {
					select {
					case j, ok := <-chans[w]:
						if !ok {
							return
						}
						batch = append(batch, j)
					case <-ctx.Done():
						return
					}
					var linger <-chan time.Time
					if cfg.Linger > 0 {
						linger = time.After(cfg.Linger)
					}
				drain:
					for len(batch) < cfg.Batch {
						select {
						case j, ok := <-chans[w]:
							if !ok {
								break drain
							}
							batch = append(batch, j)
						case <-linger:
							break drain
						default:
							if linger == nil {
								break drain
							}
							select {
							case j := <-chans[w]:
								batch = append(batch, j)
							case <-linger:
								break drain
							}
						}
					}
				} else {
					if ctx.Err() != nil {
						return
					}
					for range cfg.Batch {
						j := job{topic: next}
						if cfg.Seq {
							seq[next]++
							j.n = seq[next]
						}
						batch = append(batch, j)
						next += cfg.Conc
						if next >= len(cfg.Topics) {
							next = w % len(cfg.Topics)
						}
					}
				}
				// In-flight requests finish after the deadline: one cut off
				// might still have been published, which would break n.
				key := ""
				if cfg.Retry > 0 {
					reqs++
					key = "lg-" + run + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(reqs)
				}
				again, err := post(pc, t, cfg, batch, key)
				retried.Add(int64(again))
				if err != nil {
					errs.Add(1)
					continue
				}
				accepted.Add(int64(len(batch)))
				for _, j := range batch {
					lastN[j.topic].Store(j.n)
				}
			}
		})
	}
	if cfg.Rate > 0 {
		// The pacer: every millisecond, release what is due; notification
		// k (from 0) is due at k/Rate, so a run of d seconds sends
		// Rate×d of them.
		tick := time.NewTicker(time.Millisecond)
		var sent int64
		k := 0
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case now := <-tick.C:
				due := int64(now.Sub(start).Seconds()*cfg.Rate) + 1
				for ; sent < due; sent++ {
					ti := k % len(cfg.Topics)
					k++
					select {
					case chans[ti%cfg.Conc] <- job{topic: ti, n: seq[ti] + 1}:
						seq[ti]++
					default:
						missed.Add(1)
					}
				}
			}
		}
		tick.Stop()
	}
	wg.Wait()
	r := PubResult{Accepted: accepted.Load(), Errors: errs.Load(), Missed: missed.Load(), Retried: retried.Load(), Elapsed: time.Since(start)}
	r.LastN = make([]int64, len(lastN))
	for i := range lastN {
		r.LastN[i] = lastN[i].Load()
	}
	return r
}

func appendNotification(b []byte, topic string, j job, seq bool, keys int) []byte {
	b = append(b, `{"topics":["`...)
	b = append(b, topic...)
	b = append(b, `"],"type":"lg",`...)
	if keys > 0 {
		b = append(b, `"key":"k`...)
		b = strconv.AppendInt(b, (j.n-1)%int64(keys), 10)
		b = append(b, `",`...)
	}
	b = append(b, `"data":{`...)
	if seq {
		b = append(b, `"n":`...)
		b = strconv.AppendInt(b, j.n, 10)
		b = append(b, ',')
	}
	b = append(b, `"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	return append(b, "}}"...)
}

// post sends batch (one notification unless cfg.Batch > 1) and, with a
// key, sends it again while its outcome is unknown, up to cfg.Retry. It
// returns how many times it sent it again.
func post(pc *pubConn, t Target, cfg PubConfig, batch []job, key string) (int, error) {
	var body []byte
	path := "/v1/notifications"
	if t.Baseline {
		path = "/publish"
	}
	if cfg.Batch > 1 {
		path += "/batch"
		body = append(body, `{"notifications":[`...)
		for i, j := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendNotification(body, cfg.Topics[j.topic], j, cfg.Seq, cfg.Keys)
		}
		body = append(body, "]}"...)
	} else {
		body = appendNotification(body, cfg.Topics[batch[0].topic], batch[0], cfg.Seq, cfg.Keys)
	}
	deadline := time.Now().Add(cfg.Retry)
	for again := 0; ; again++ {
		status, err := pc.post(path, body, key)
		if err == nil && status == http.StatusAccepted {
			return again, nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		unknown := status == 0 || status == http.StatusServiceUnavailable || status == http.StatusConflict
		if key == "" || !unknown || time.Now().After(deadline) {
			return again, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
