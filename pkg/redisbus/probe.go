package redisbus

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A pub/sub connection can outlive its usefulness without an error: after
// a failover it may stay attached to a node that no longer gets publishes.
// The probe publishes to the pod's own channel when the connection has been
// quiet for a while and replaces the connection if nothing comes back.
const (
	probeEvery   = 15 * time.Second
	probeTimeout = 3 * time.Second
)

type probe struct {
	channel   string
	lastHeard atomic.Int64 // unix nanoseconds of the last thing read
	answer    chan struct{}
}

func newProbe(channel string) probe {
	return probe{channel: channel, answer: make(chan struct{}, 1)}
}

func (p *probe) heard() { p.lastHeard.Store(time.Now().UnixNano()) }

func (p *probe) answered() {
	select {
	case p.answer <- struct{}{}:
	default:
	}
}

func (p *probe) run(ctx context.Context, sh *shard) {
	_ = sh.subscribe(ctx, []string{p.channel})
	tick := time.NewTicker(probeEvery / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(time.Unix(0, p.lastHeard.Load())) < probeEvery {
			continue
		}
		select {
		case <-p.answer: // a stale answer
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		var err error
		if sh.s.sharded {
			err = sh.s.client.SPublish(pctx, p.channel, "probe").Err()
		} else {
			err = sh.s.client.Publish(pctx, p.channel, "probe").Err()
		}
		if err == nil {
			select {
			case <-p.answer:
			case <-pctx.Done():
				if ctx.Err() == nil {
					sh.s.stats.probeTimeouts.Add(1)
					sh.s.log.Warn("pub/sub connection is deaf to its own probe; reconnecting", zap.Int("partition", sh.part))
					sh.reconnect()
				}
			}
		} else if ctx.Err() == nil {
			sh.s.stats.probeErrors.Add(1)
			sh.s.log.Debug("probe publish failed", zap.Error(err))
		}
		cancel()
	}
}
