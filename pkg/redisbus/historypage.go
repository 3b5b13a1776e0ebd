package redisbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
)

// Newest reads up to limit events of topic older than before (all when
// before is 0), newest first, with the topic's position, in one MULTI.
func (h *History) Newest(ctx context.Context, topic string, before uint64, limit int) (notification.HistoryPage, error) {
	end := "+"
	count := int64(limit) + 1 // one more tells whether older events exist
	if before > 0 {
		end = "0-" + strconv.FormatUint(before, 10)
		count++ // the event at before itself, for its link
	}
	var meta *redis.SliceCmd
	var entries *redis.XMessageSliceCmd
	_, err := h.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		meta = pipe.HMGet(ctx, h.keys.Meta(topic), "epoch", "seq", "link")
		entries = pipe.XRevRangeN(ctx, h.keys.History(topic), end, "-", count)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return notification.HistoryPage{}, fmt.Errorf("redisbus: read history of %s: %w", topic, err)
	}
	var p notification.HistoryPage
	vals := meta.Val()
	if len(vals) != 3 {
		return notification.HistoryPage{}, fmt.Errorf("redisbus: read history of %s: %w: meta reply %v", topic, notification.ErrBadMessage, vals)
	}
	epoch, _ := vals[0].(string)
	seq, _ := vals[1].(string)
	link, _ := vals[2].(string)
	if epoch == "" || seq == "" {
		return p, nil // no events: whatever history survived belongs to no epoch
	}
	if p.Head, err = notification.ParsePosition(epoch, seq); err == nil {
		p.Head.Link, err = notification.ParseLink(link)
	}
	if err != nil {
		return notification.HistoryPage{}, fmt.Errorf("redisbus: read history of %s: %w", topic, err)
	}
	msgs, err := decodeRange(topic, p.Head.Epoch, entries.Val())
	if err != nil {
		return notification.HistoryPage{}, fmt.Errorf("redisbus: read history of %s: %w", topic, err)
	}
	if before > 0 && len(msgs) > 0 && msgs[0].Pos.Seq == before {
		p.BeforeLink = msgs[0].Pos.Link
		msgs = msgs[1:]
	}
	if len(msgs) > limit {
		msgs, p.More = msgs[:limit], true
	}
	p.Events = msgs
	return p, nil
}
