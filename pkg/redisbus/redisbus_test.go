package redisbus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

func newBus(t *testing.T, r *redistest.Server) (*Publisher, *History) {
	t.Helper()
	keys := Keys{Prefix: fmt.Sprintf("t%d:", time.Now().UnixNano())}
	c := r.Client()
	return NewPublisher(c, keys, PublisherConfig{HistoryMaxLen: 5, HistoryTTL: time.Hour}), NewHistory(c, keys)
}

func body(n int) string {
	return notification.EncodeBody("t", []byte(fmt.Sprintf(`{"id":"id-%d","data":%d}`, n, n)))
}

// Positions count up from 1 within an epoch; history holds the recent
// ones; a topic that loses its data starts a new epoch.
func TestPublishPositionsHistoryAndEpochs(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx := t.Context()
	var last notification.Position
	const n = 250 // trimming is approximate: whole nodes of 100 entries go
	for i := 1; i <= n; i++ {
		pos, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if pos[0].Pos.Seq != uint64(i) || (i > 1 && pos[0].Pos.Epoch != last.Epoch) || pos[0].Pos.Epoch == 0 {
			t.Fatalf("publish %d: position %+v after %+v", i, pos[0], last)
		}
		last = pos[0].Pos
	}
	got, err := hist.Positions(ctx, []string{"seller:1", "seller:2"})
	if err != nil || got[0] != last || !got[1].Zero() {
		t.Fatalf("positions %+v, %v", got, err)
	}
	msgs, err := readRange(ctx, hist, "seller:1", last.Epoch, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 5 || len(msgs) > 105 || msgs[len(msgs)-1].Pos.Seq != n || msgs[0].Pos.Seq == 1 {
		t.Fatalf("history after trimming to ~5: %d entries from %d to %d", len(msgs), msgs[0].Pos.Seq, msgs[len(msgs)-1].Pos.Seq)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Pos.Seq != msgs[i-1].Pos.Seq+1 {
			t.Fatalf("history has a gap between %d and %d", msgs[i-1].Pos.Seq, msgs[i].Pos.Seq)
		}
	}
	if string(msgs[len(msgs)-1].Envelope) != fmt.Sprintf(`{"id":"id-%d","data":%d}`, n, n) || msgs[0].Type != "t" {
		t.Fatalf("entry: %+v", msgs[len(msgs)-1])
	}

	r.Client().FlushAll(ctx)
	pos, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(13)}})
	if err != nil {
		t.Fatal(err)
	}
	if pos[0].Pos.Seq != 1 || pos[0].Pos.Epoch == last.Epoch {
		t.Fatalf("after data loss: %+v, want seq 1 in a new epoch (old %d)", pos[0], last.Epoch)
	}
}

type recorder struct {
	mu           sync.Mutex
	msgs         []notification.Message
	resubscribed []string
}

func (r *recorder) Deliver(m notification.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) Resubscribed(topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resubscribed = append(r.resubscribed, topic)
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs), len(r.resubscribed)
}

// The subscriber receives exactly what it subscribed to once Subscribe's
// wait returns, and reports a resubscription after Redis restarts.
func TestSubscriberDeliversAndNoticesReconnect(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, _ := newBus(t, r)
	sub := NewSubscriber(r.Client(), pub.keys, false, zap.NewNop())
	rec := &recorder{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = sub.Run(ctx, rec); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	p, err := sub.Subscribe(ctx, "seller:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(1)}, {Topic: "seller:2", Body: body(2)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { n, _ := rec.counts(); return n == 1 })
	time.Sleep(100 * time.Millisecond)
	if n, _ := rec.counts(); n != 1 || rec.msgs[0].Topic != "seller:1" || rec.msgs[0].Pos.Seq != 1 {
		t.Fatalf("received %+v, want only seller:1 seq 1", rec.msgs)
	}

	r.Restart()
	waitFor(t, func() bool { _, n := rec.counts(); return n >= 1 })
	if err := sub.Healthy(); err != nil {
		t.Fatalf("healthy after the reconnect: %v", err)
	}
	if rec.resubscribed[0] != "seller:1" {
		t.Fatalf("resubscribed %v", rec.resubscribed)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "the condition", cond)
}

// Each event records its predecessor's link, in history and on the wire,
// and a new epoch starts a new chain.
func TestLinksChainEvents(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx := t.Context()
	for i, l := range []uint32{0xa1, 0xb2, 0xc3} {
		pos, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(i), Link: l}})
		if err != nil || pos[0].Pos.Link != l {
			t.Fatalf("publish: %+v %v", pos, err)
		}
	}
	msgs, err := readRange(ctx, hist, "seller:1", 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var links, prevs []uint32
	for _, m := range msgs {
		links, prevs = append(links, m.Pos.Link), append(prevs, m.Prev)
	}
	if fmt.Sprint(links) != fmt.Sprint([]uint32{0xa1, 0xb2, 0xc3}) || fmt.Sprint(prevs) != fmt.Sprint([]uint32{0, 0xa1, 0xb2}) {
		t.Fatalf("links %x prevs %x", links, prevs)
	}
	if pos, _ := hist.Positions(ctx, []string{"seller:1"}); pos[0].Link != 0xc3 {
		t.Fatalf("position link %x, want c3", pos[0].Link)
	}
}

// After Redis lost its script cache, a batch still lands in order even
// while other clients reload the script: every event of a topic keeps the
// order of the batch.
func TestPublishOrderSurvivesScriptFlush(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	small, hist := newBus(t, r)
	pub := NewPublisher(r.Client(), small.keys, PublisherConfig{HistoryMaxLen: 5000, HistoryTTL: time.Hour})
	other := NewPublisher(r.Client(), small.keys, PublisherConfig{HistoryMaxLen: 5000, HistoryTTL: time.Hour})
	ctx := t.Context()
	const rounds, per = 20, 200
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 { // other write-apis reloading the script meanwhile
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = other.Publish(ctx, []notification.Event{{Topic: "seller:other", Body: body(0)}})
				}
			})
		}
		items := make([]notification.Event, per)
		for i := range items {
			items[i] = notification.Event{Topic: "seller:1", Body: body(round*1000 + i)}
		}
		r.Client().ScriptFlush(ctx) // as a restarted or failed-over Redis
		_, err := pub.Publish(ctx, items)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := readRange(ctx, hist, "seller:1", 0, 0, rounds*per)
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for round := range rounds {
		for i := range per {
			want = append(want, fmt.Sprintf(`{"id":"id-%d","data":%d}`, round*1000+i, round*1000+i))
		}
	}
	for _, m := range msgs {
		got = append(got, string(m.Envelope))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history order differs from publish order (%d events)", len(got))
	}
}

// Concurrent Range calls share pipelines and identical ones share an
// XRANGE: 300 streams of three topics resuming from the same cursors get
// their own topic's events, in far fewer commands than calls.
func TestConcurrentRangesShareCommands(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	keys := Keys{Prefix: "share:"}
	c := r.Client()
	pub := NewPublisher(c, keys, PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour})
	hist := NewHistory(c, keys)
	ctx := t.Context()
	topics := []string{"seller:1", "seller:2", "seller:3"}
	var epoch [3]uint64
	for i, topic := range topics {
		for n := 1; n <= 10; n++ {
			pos, err := pub.Publish(ctx, []notification.Event{{Topic: topic, Body: body(100*i + n)}})
			if err != nil {
				t.Fatal(err)
			}
			epoch[i] = pos[0].Pos.Epoch
		}
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const calls = 300
	start := make(chan struct{})
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for k := range calls {
		i := k % 3
		wg.Go(func() {
			<-start
			msgs, err := readRange(ctx, hist, topics[i], epoch[i], 4, 100)
			switch {
			case err != nil:
				errs <- err
			case len(msgs) != 6 || msgs[0].Pos.Seq != 5 || msgs[5].Pos.Seq != 10 || msgs[0].Topic != topics[i]:
				errs <- fmt.Errorf("call %d on %s: %d messages %+v", k, topics[i], len(msgs), msgs)
			case string(msgs[0].Envelope) != fmt.Sprintf(`{"id":"id-%d","data":%d}`, 100*i+5, 100*i+5):
				errs <- fmt.Errorf("call %d on %s: first envelope %s", k, topics[i], msgs[0].Envelope)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var xranges int
	for line := range strings.Lines(stats) {
		if strings.HasPrefix(line, "cmdstat_xrange:") {
			_, _ = fmt.Sscanf(line, "cmdstat_xrange:calls=%d", &xranges)
		}
	}
	if xranges == 0 || xranges > calls/3 {
		t.Fatalf("%d XRANGE commands for %d concurrent calls, want between 1 and %d", xranges, calls, calls/3)
	}
	t.Logf("%d XRANGE commands for %d calls", xranges, calls)
}

// One event whose commands fail (its topic's key holds another type) fails
// alone: the events before and after it in the same script call are
// stored and published.
func TestPublishEventFailsAlone(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx := t.Context()
	if err := r.Client().Set(ctx, pub.keys.Meta("seller:bad"), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	items := []notification.Event{{Topic: "seller:1", Body: body(1)}, {Topic: "seller:bad", Body: body(2)}, {Topic: "seller:2", Body: body(3)}}
	pos, errs := pub.publish(ctx, items)
	if errs[0] != nil || errs[2] != nil || pos[0].Pos.Seq != 1 || pos[2].Pos.Seq != 1 {
		t.Fatalf("the good events: %+v, %v", pos, errs)
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "WRONGTYPE") {
		t.Fatalf("the bad event: %v, want WRONGTYPE", errs[1])
	}
	if got, err := hist.Positions(ctx, []string{"seller:1", "seller:2"}); err != nil || got[0].Seq != 1 || got[1].Seq != 1 {
		t.Fatalf("history positions %+v, %v", got, err)
	}
	if _, err := pub.Publish(ctx, items); err == nil || !strings.Contains(err.Error(), "seller:bad") {
		t.Fatalf("Publish: %v, want the bad topic's error", err)
	}
}

// In a cluster a script call's keys must share a slot: items are grouped
// by partition, each group in batch order; elsewhere one call takes all.
func TestPublishGroupsByPartitionInCluster(t *testing.T) {
	t.Parallel()
	keys := Keys{Prefix: "g:"}
	var items []notification.Event
	for i := range 40 {
		items = append(items, notification.Event{Topic: fmt.Sprintf("seller:%d", i%10)})
	}
	if g := NewPublisher(nil, keys, PublisherConfig{}).group(items); len(g) != 1 || len(g[0]) != 40 {
		t.Fatalf("standalone: %d groups", len(g))
	}
	groups := NewPublisher(nil, keys, PublisherConfig{Sharded: true}).group(items)
	seen := 0
	for _, g := range groups {
		part := keys.Partition(items[g[0]].Topic)
		for j, i := range g {
			if keys.Partition(items[i].Topic) != part || j > 0 && i <= g[j-1] {
				t.Fatalf("group %v mixes partitions or breaks batch order", g)
			}
		}
		seen += len(g)
	}
	if seen != 40 || len(groups) < 2 {
		t.Fatalf("%d groups holding %d items", len(groups), seen)
	}
}

// A range stops before the event that would pass its byte bound. An event
// larger than the bound alone comes with no events and its size; asked
// again with that size, the page holds it. Reading on from the last event
// returns the rest in order.
func TestRangeIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	keys := Keys{Prefix: "bytes:"}
	c := r.Client()
	pub := NewPublisher(c, keys, PublisherConfig{HistoryMaxLen: 100, HistoryTTL: time.Hour})
	hist := NewHistory(c, keys)
	ctx := t.Context()
	sizes := []int{100 << 10, 100 << 10, 100 << 10, 400 << 10, 10, 10, 10}
	var epoch uint64
	for i, n := range sizes {
		env := fmt.Sprintf(`{"id":"id-%d","data":"%s"}`, i, strings.Repeat("x", n))
		pos, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: notification.EncodeBody("t", []byte(env))}})
		if err != nil {
			t.Fatal(err)
		}
		epoch = pos[0].Pos.Epoch
	}
	const bound = 256 << 10
	var pages [][]uint64
	var needs []int
	for after, maxBytes := uint64(0), bound; after < uint64(len(sizes)); {
		p, err := hist.Range(ctx, notification.RangeQuery{Topic: "seller:1", Epoch: epoch, After: after, Count: 500, MaxBytes: maxBytes})
		if err != nil {
			t.Fatal(err)
		}
		if p.Need > 0 {
			if len(p.Events) > 0 || p.Need <= maxBytes {
				t.Fatalf("after %d with %d bytes: need %d with %d events", after, maxBytes, p.Need, len(p.Events))
			}
			needs = append(needs, p.Need)
			maxBytes = p.Need
			continue
		}
		if len(p.Events) == 0 {
			t.Fatalf("empty page after %d", after)
		}
		var page []uint64
		for _, m := range p.Events {
			page = append(page, m.Pos.Seq)
		}
		pages = append(pages, page)
		after, maxBytes = p.Events[len(p.Events)-1].Pos.Seq, bound
	}
	want := [][]uint64{{1, 2}, {3}, {4}, {5, 6, 7}} // 200 KiB, then 100 KiB (+400 KiB would pass), 400 KiB alone, the small ones
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
	if len(needs) != 1 || needs[0] < 400<<10 || needs[0] > 401<<10 {
		t.Fatalf("sizes reported %v, want one of about 400 KiB", needs)
	}
}

// readRange reads a page with room for any event.
func readRange(ctx context.Context, hist *History, topic string, epoch, after uint64, count int64) ([]notification.Message, error) {
	p, err := hist.Range(ctx, notification.RangeQuery{Topic: topic, Epoch: epoch, After: after, Count: count, MaxBytes: 1 << 30})
	return p.Events, err
}
