package redisbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"notify/pkg/notification"
	"notify/pkg/redistest"
)

// Many concurrent calls share script calls, and each still gets exactly its
// own items' positions: per topic, the positions handed out are 1..N once
// each, and a call's items keep their order.
func TestConcurrentPublishesShareRoundTrips(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, _ := newBus(t, r)
	ctx := t.Context()
	const workers, calls = 32, 20
	topics := []string{"seller:1", "seller:2", "seller:3"}
	var mu sync.Mutex
	seqs := map[string][]uint64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				// Two items on one topic, then one on another: order within the call must hold.
				t1, t2 := topics[(w+i)%3], topics[(w+i+1)%3]
				pos, err := pub.Publish(ctx, []notification.Event{{Topic: t1, Body: body(i)}, {Topic: t1, Body: body(i)}, {Topic: t2, Body: body(i)}})
				if err != nil {
					errs <- err
					return
				}
				if len(pos) != 3 || pos[1].Pos.Seq != pos[0].Pos.Seq+1 {
					errs <- errors.New("positions of one call out of order: " + strconv.Itoa(len(pos)))
					return
				}
				mu.Lock()
				seqs[t1] = append(seqs[t1], pos[0].Pos.Seq, pos[1].Pos.Seq)
				seqs[t2] = append(seqs[t2], pos[2].Pos.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for topic, got := range seqs {
		slices.Sort(got)
		for i, s := range got {
			if s != uint64(i+1) {
				t.Fatalf("%s: positions %v..., want 1..%d each once", topic, got[:min(len(got), 10)], len(got))
			}
		}
		total += len(got)
	}
	if total != workers*calls*3 {
		t.Fatalf("%d positions, want %d", total, workers*calls*3)
	}
	// Fewer script calls than calls: calls were coalesced, each batch in
	// one script call.
	info, err := r.Client().Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	scripts := commandCalls(info, "evalsha")
	if scripts == 0 || scripts >= workers*calls {
		t.Fatalf("%d EVALSHAs for %d concurrent calls, want fewer (coalesced)", scripts, workers*calls)
	}
	t.Logf("%d calls in %d script calls", workers*calls, scripts)
}

// A call whose caller gave up before its batch was sent publishes nothing.
func TestCancelledPublishPublishesNothing(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:1", Body: body(1)}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v, want context.Canceled", err)
	}
	pos, err := hist.Positions(t.Context(), []string{"seller:1"})
	if err != nil {
		t.Fatal(err)
	}
	if pos[0] != (notification.Position{}) {
		t.Fatalf("a cancelled publish stored %+v", pos[0])
	}
}

// commandCalls reads calls=N of cmdstat_<name> from INFO commandstats.
func commandCalls(info, name string) int {
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// Concurrent position reads share pipelines and each gets its own topics'
// positions, in its order.
func TestConcurrentPositions(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	pub, hist := newBus(t, r)
	ctx := t.Context()
	for k := 1; k <= 4; k++ { // seller:k has k events
		for range k {
			if _, err := pub.Publish(ctx, []notification.Event{{Topic: "seller:" + strconv.Itoa(k), Body: body(k)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			a, b := 1+w%4, 1+(w+1)%4
			pos, err := hist.Positions(ctx, []string{"seller:" + strconv.Itoa(a), "seller:none", "seller:" + strconv.Itoa(b)})
			switch {
			case err != nil:
				errs <- err
			case pos[0].Seq != uint64(a) || !pos[1].Zero() || pos[2].Seq != uint64(b):
				errs <- fmt.Errorf("positions %+v for sellers %d, none, %d", pos, a, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
