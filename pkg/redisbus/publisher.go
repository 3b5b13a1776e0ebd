package redisbus

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

//go:embed publish.lua
var publishLua string

var publishScript = redis.NewScript(publishLua)

// Item is one event to publish on one topic.
type Item struct {
	Topic string
	Body  string // notification.EncodeBody(type, envelope)
	// Link is the event's link in the topic's chain (notification.LinkOf).
	Link uint32
	// OnceID, when set, is the notification id of a retried publish: if the
	// topic's recent history already holds it, it is not published again.
	OnceID string
	// Key, when set, makes the event the topic's state for that key, or
	// with Remove (a notification with data null) removes the key.
	Key    string
	Remove bool
}

// Publisher runs the publish script.
type Publisher struct {
	client     redis.UniversalClient
	keys       Keys
	maxLen     string
	ttlMillis  string
	publishCmd string
	maxKeys    string
	sharded    bool // Redis Cluster: a script call's keys must share a slot
	co         coalescer[Item, notification.Position]
}

// PublisherConfig sizes the history.
type PublisherConfig struct {
	HistoryMaxLen int64
	HistoryTTL    time.Duration
	StateMaxKeys  int64 // keys one topic's state holds; the least recently updated goes first
	Sharded       bool  // Redis Cluster: SPUBLISH on the topic's shard
}

// NewPublisher wraps a client; the script is loaded lazily and reloaded
// whenever Redis answers NOSCRIPT (restart, failover).
func NewPublisher(client redis.UniversalClient, keys Keys, cfg PublisherConfig) *Publisher {
	cmd := "PUBLISH"
	if cfg.Sharded {
		cmd = "SPUBLISH"
	}
	p := &Publisher{
		client:     client,
		keys:       keys,
		maxLen:     strconv.FormatInt(cfg.HistoryMaxLen, 10),
		ttlMillis:  strconv.FormatInt(cfg.HistoryTTL.Milliseconds(), 10),
		publishCmd: cmd,
		maxKeys:    strconv.FormatInt(max(cfg.StateMaxKeys, 1), 10),
		sharded:    cfg.Sharded,
	}
	p.co.run = p.publish
	return p
}

// Publish stores and publishes every item and returns each item's
// position; concurrent calls share round trips (coalesce.go). It succeeds
// only when all items did: on error some items may have been published, so
// callers retry with the same notification ids (subscribers can
// deduplicate by id).
func (p *Publisher) Publish(ctx context.Context, items []Item) ([]notification.Position, error) {
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
func (p *Publisher) publish(ctx context.Context, items []Item) ([]notification.Position, []error) {
	out := make([]notification.Position, len(items))
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
func (p *Publisher) group(items []Item) [][]int {
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
func (p *Publisher) run(ctx context.Context, items []Item, groups [][]int) []*redis.Cmd {
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(groups))
	for g, idx := range groups {
		keys := make([]string, 0, 4*len(idx))
		args := make([]any, 0, 4+5*len(idx))
		args = append(args, p.maxLen, p.ttlMillis, p.publishCmd, p.maxKeys)
		for _, i := range idx {
			it := items[i]
			once := ""
			if it.OnceID != "" {
				once = `"id":"` + it.OnceID + `"`
			}
			keys = append(keys, p.keys.Meta(it.Topic), p.keys.History(it.Topic), p.keys.State(it.Topic), p.keys.StateOrder(it.Topic))
			args = append(args, p.keys.Channel(it.Topic), it.Body, once, notification.FormatLink(max(it.Link, 1)), stateOp(it))
		}
		cmds[g] = publishScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read by settle
	return cmds
}

// stateOp is the script's state update for it: ” (none), '+<key>' or
// '-<key>'.
func stateOp(it Item) string {
	switch {
	case it.Key == "":
		return ""
	case it.Remove:
		return "-" + it.Key
	default:
		return "+" + it.Key
	}
}

// settle reads one call's replies, {epoch, seq} or an error per item.
func settle(cmd *redis.Cmd, items []Item, idx []int, out []notification.Position, errs []error) {
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
			if len(r) != 2 {
				errs[i] = fmt.Errorf("%w: reply %v", notification.ErrBadMessage, r)
				continue
			}
			epoch, _ := r[0].(string)
			seq, _ := r[1].(string)
			out[i], errs[i] = notification.ParsePosition(epoch, seq)
			out[i].Link = max(items[i].Link, 1)
		default:
			errs[i] = fmt.Errorf("%w: reply %v", notification.ErrBadMessage, r)
		}
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
