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
}

// Publisher runs the publish script.
type Publisher struct {
	client     redis.UniversalClient
	keys       Keys
	maxLen     string
	ttlMillis  string
	publishCmd string
	co         coalescer[Item, notification.Position]
}

// PublisherConfig sizes the history.
type PublisherConfig struct {
	HistoryMaxLen int64
	HistoryTTL    time.Duration
	Sharded       bool // Redis Cluster: SPUBLISH on the topic's shard
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

// publish runs the script for every item in one MULTI/EXEC and returns each
// item's position or error.
func (p *Publisher) publish(ctx context.Context, items []Item) ([]notification.Position, []error) {
	cmds := make([]*redis.Cmd, len(items))
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	errs := make([]error, len(items))
	// At most two rounds: the second only for items that met NOSCRIPT (a
	// restarted or failed-over Redis), which did not run and are safe to send again.
	for round := 0; len(pending) > 0; round++ {
		p.run(ctx, items, pending, cmds)
		var again []int
		for _, i := range pending {
			if isNoScript(cmds[i].Err()) && round == 0 {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			if err := publishScript.Load(ctx, p.client).Err(); err != nil {
				err = fmt.Errorf("load publish script: %w", err)
				for _, i := range again {
					errs[i] = err
				}
				break
			}
		}
		pending = again
	}
	out := make([]notification.Position, len(cmds))
	for i, c := range cmds {
		if errs[i] != nil {
			continue
		}
		res, err := c.StringSlice()
		switch {
		case err != nil:
			errs[i] = err
		case len(res) != 2:
			errs[i] = fmt.Errorf("%w: reply %q", notification.ErrBadMessage, res)
		default:
			out[i], errs[i] = notification.ParsePosition(res[0], res[1])
			out[i].Link = max(items[i].Link, 1)
		}
	}
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", items[i].Topic, err)
		}
	}
	return out, errs
}

// run sends the script for items[idx...] in one MULTI/EXEC (per slot in a
// cluster); errors stay on each command. The transaction matters when Redis
// has lost its script cache: a plain pipeline could have its first calls
// fail with NOSCRIPT and later ones succeed after another client reloaded
// the script in between, and the retry would then publish a topic's events
// out of order. Inside one transaction they all fail or all run.
func (p *Publisher) run(ctx context.Context, items []Item, idx []int, cmds []*redis.Cmd) {
	pipe := p.client.TxPipeline()
	for _, i := range idx {
		it := items[i]
		keys := []string{p.keys.Meta(it.Topic), p.keys.History(it.Topic)}
		once := ""
		if it.OnceID != "" {
			once = `"id":"` + it.OnceID + `"`
		}
		cmds[i] = publishScript.EvalSha(ctx, pipe, keys, p.keys.Channel(it.Topic), it.Body, p.maxLen, p.ttlMillis, p.publishCmd, once,
			notification.FormatLink(max(it.Link, 1)))
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read by the caller
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
