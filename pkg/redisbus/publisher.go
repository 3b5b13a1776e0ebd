package redisbus

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

//go:embed publish.lua
var publishLua string

var publishScript = redis.NewScript(publishLua)

// Publisher runs the publish script.
type Publisher struct {
	client     redis.UniversalClient
	keys       Keys
	maxLen     string
	ttlMillis  string
	onceMillis string
	publishCmd string
	maxKeys    string
	sharded    bool // Redis Cluster: a script call's keys must share a slot
	latency    prometheus.Observer
	co         coalescer[notification.Event, notification.Stored]
}

// PublisherConfig sizes the history.
type PublisherConfig struct {
	HistoryMaxLen int64
	HistoryTTL    time.Duration
	Sharded       bool // Redis Cluster: SPUBLISH on the topic's shard
	// StateMaxKeys is how many keys one topic's state holds; past it the
	// least recently updated goes.
	StateMaxKeys int64
	// OnceWindow is how long after its id was made an idempotent event
	// (Event.Once) is still recognised when published again; 24 h if zero.
	OnceWindow time.Duration
	// ScriptLatency, if set, observes the seconds each round trip of
	// script calls takes (one per coalesced batch).
	ScriptLatency prometheus.Observer
}

// defaultOnceWindow matches write-api's idempotency window.
const defaultOnceWindow = 24 * time.Hour

// NewPublisher wraps a client; the script is loaded lazily and reloaded
// whenever Redis answers NOSCRIPT (restart, failover).
func NewPublisher(client redis.UniversalClient, keys Keys, cfg PublisherConfig) *Publisher {
	cmd := "PUBLISH"
	if cfg.Sharded {
		cmd = "SPUBLISH"
	}
	window := cfg.OnceWindow
	if window <= 0 {
		window = defaultOnceWindow
	}
	// A once hash is created by the first event of its hour at the
	// earliest and must outlive the window of the hour's last id; the
	// extra hour absorbs clock skew between write-api and Redis.
	onceTTL := window + onceBucket + time.Hour
	p := &Publisher{
		client:     client,
		keys:       keys,
		maxLen:     strconv.FormatInt(cfg.HistoryMaxLen, 10),
		ttlMillis:  strconv.FormatInt(cfg.HistoryTTL.Milliseconds(), 10),
		onceMillis: strconv.FormatInt(onceTTL.Milliseconds(), 10),
		publishCmd: cmd,
		maxKeys:    strconv.FormatInt(max(cfg.StateMaxKeys, 1), 10),
		sharded:    cfg.Sharded,
		latency:    cfg.ScriptLatency,
	}
	p.co.run = p.publish
	return p
}

// Publish stores and publishes every event and returns where each was
// stored; concurrent calls share round trips (coalesce.go). It succeeds
// only when all events did: on error some may have been published, so a
// caller that retries must set Event.Once, which makes each event stored
// at most once however often it is sent.
func (p *Publisher) Publish(ctx context.Context, items []notification.Event) ([]notification.Stored, error) {
	pos, err := p.co.do(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("redisbus: publish: %w", err)
	}
	return pos, nil
}

// publish runs the script for every item and returns each item's
// position or error: one script call for the batch, or in a cluster one
// per partition (a call's keys must share a slot). Items keep their
// batch order within a call, so each topic's events keep it too.
func (p *Publisher) publish(ctx context.Context, items []notification.Event) ([]notification.Stored, []error) {
	out := make([]notification.Stored, len(items))
	errs := make([]error, len(items))
	groups := p.group(items)
	// At most two rounds: the second only for calls that met NOSCRIPT (a
	// restarted or failed-over Redis), which ran nothing and are safe to
	// send again. A call covers whole topics, so one retried while another
	// succeeded cannot reorder a topic's events.
	for round := 0; len(groups) > 0; round++ {
		cmds := p.run(ctx, items, groups)
		var again [][]int
		for g, cmd := range cmds {
			if isNoScript(cmd.Err()) && round == 0 {
				again = append(again, groups[g])
				continue
			}
			settle(cmd, items, groups[g], out, errs)
		}
		if len(again) > 0 {
			if err := publishScript.Load(ctx, p.client).Err(); err != nil {
				err = fmt.Errorf("load publish script: %w", err)
				for _, idx := range again {
					for _, i := range idx {
						errs[i] = err
					}
				}
				break
			}
		}
		groups = again
	}
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", items[i].Topic, err)
		}
	}
	return out, errs
}

// group splits the items into script calls: all in one, or in a cluster
// one per partition, each in batch order.
func (p *Publisher) group(items []notification.Event) [][]int {
	if !p.sharded {
		all := make([]int, len(items))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	var groups [][]int
	at := map[int]int{} // partition → index in groups
	for i, it := range items {
		part := p.keys.Partition(it.Topic)
		g, ok := at[part]
		if !ok {
			g = len(groups)
			at[part] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// run sends one script call per group in one pipeline; errors stay on
// each command.
func (p *Publisher) run(ctx context.Context, items []notification.Event, groups [][]int) []*redis.Cmd {
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(groups))
	for g, idx := range groups {
		args := make([]any, 0, 3+5*len(idx)+5+5*len(idx))
		args = append(args, "evalsha", publishScript.Hash(), 5*len(idx))
		for _, i := range idx {
			it := items[i]
			meta := p.keys.Meta(it.Topic)
			once := meta // any key of the topic's slot: the script does not touch it
			if it.Once != "" {
				once = p.keys.Once(it.Topic, it.Once)
			}
			args = append(args, meta, p.keys.History(it.Topic), once, p.keys.State(it.Topic), p.keys.StateOrder(it.Topic))
		}
		args = append(args, p.maxLen, p.ttlMillis, p.publishCmd, p.onceMillis, p.maxKeys)
		for _, i := range idx {
			it := items[i]
			once := ""
			if it.Once != "" {
				once = it.Once + " " + it.Topic
			}
			args = append(args, p.keys.Channel(it.Topic), it.Body, once, notification.FormatLink(max(it.Link, 1)), stateOp(it))
		}
		cmds[g] = redis.NewCmd(ctx, args...)
		_ = pipe.Process(ctx, noRetry{cmds[g]})
	}
	start := time.Now()
	_, _ = pipe.Exec(ctx) // per-command errors are read by settle
	if p.latency != nil {
		p.latency.Observe(time.Since(start).Seconds())
	}
	return cmds
}

// stateOp is the script's state update for ev: "" (none), "+<key>" or
// "-<key>".
func stateOp(ev notification.Event) string {
	switch {
	case ev.Key == "":
		return ""
	case ev.Remove:
		return "-" + ev.Key
	default:
		return "+" + ev.Key
	}
}

// noRetry marks a script call go-redis must never send again by itself
// (it would after a read timeout, on a new connection): the first call may
// still run once Redis answers, and publishing is not idempotent.
// Resending is left to publish, which does it only after NOSCRIPT, when
// nothing ran.
type noRetry struct{ *redis.Cmd }

func (noRetry) NoRetry() bool { return true }

// settle reads one call's replies, {epoch, seq} or an error per item.
func settle(cmd *redis.Cmd, items []notification.Event, idx []int, out []notification.Stored, errs []error) {
	replies, err := cmd.Slice()
	if err == nil && len(replies) != len(idx) {
		err = fmt.Errorf("%w: %d replies for %d events", notification.ErrBadMessage, len(replies), len(idx))
	}
	for j, i := range idx {
		if err != nil {
			errs[i] = err
			continue
		}
		switch r := replies[j].(type) {
		case error:
			errs[i] = r
		case []any:
			if len(r) != 2 && len(r) != 3 {
				errs[i] = fmt.Errorf("%w: reply %v", notification.ErrBadMessage, r)
				continue
			}
			epoch, _ := r[0].(string)
			seq, _ := r[1].(string)
			out[i].Pos, errs[i] = notification.ParsePosition(epoch, seq)
			out[i].Pos.Link = max(items[i].Link, 1)
			out[i].Existed = len(r) == 3
		default:
			errs[i] = fmt.Errorf("%w: reply %v", notification.ErrBadMessage, r)
		}
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
