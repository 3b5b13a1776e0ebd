package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"notify/e2e/stack"
)

// Snapshots opened at random moments while keyed updates (and removals,
// and unkeyed events) are published at a few hundred per second: each
// stream's snapshot folded with its live events equals the final state,
// and the live events after stream.synced are exactly the notifications
// published after the snapshot, none missing, none repeated, none already
// in the snapshot.
func TestSnapshotUnderLoad(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:load")
	const (
		total   = 1200
		rate    = 300 // per second
		streams = 12
		keys    = 40
	)
	var mu sync.Mutex
	var ids []string // in publish order
	model := board{}
	started := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range total {
			if i == 50 {
				close(started)
			}
			key := any(fmt.Sprintf("k%d", rand.IntN(keys)))
			var data any = map[string]int{"n": i}
			switch {
			case i%15 == 7:
				key = nil // unkeyed
			case i%10 == 3:
				data = nil // removal
			}
			id := publishKeyed(t, w, pub, []string{"device:load"}, "device.status", key, data)
			mu.Lock()
			ids = append(ids, id)
			if k, ok := key.(string); ok {
				if data == nil {
					delete(model, k)
				} else {
					model[k] = fmt.Sprintf(`{"n":%d}`, i)
				}
			}
			mu.Unlock()
			<-tick.C
		}
	}()
	<-started
	conns := make([]*frames, streams)
	for i := range conns {
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond) // random moments, spread over the run
		conns[i] = openFrames(t, r, tok, "?topic=device:load&snapshot=true", nil)
	}
	select {
	case <-published:
	case <-time.After(60 * time.Second):
		t.Fatal("publishing did not finish")
	}
	final := readStateDoc(t, r, tok, "device:load")
	want := board{}
	for _, e := range final.Entries {
		want.apply(t, e)
	}
	if fmt.Sprint(map[string]string(want)) != fmt.Sprint(map[string]string(model)) {
		t.Fatalf("state read %v, want the publishes' fold %v", want, model)
	}
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
	}
	last := ids[len(ids)-1]
	for n, f := range conns {
		snap, synced := f.untilSynced(t, 10*time.Second)
		if !synced.HasID {
			t.Fatalf("stream %d: stream.synced without id", n)
		}
		b := board{}
		maxSnap := -1
		for _, fr := range snap {
			e := decodeEnv(t, fr.Data)
			if fr.HasID || e.Key == nil {
				t.Fatalf("stream %d: snapshot event %+v", n, fr)
			}
			b.apply(t, e)
			if index[e.ID] <= maxSnap {
				t.Fatalf("stream %d: snapshot not in last-update order: #%d after #%d", n, index[e.ID], maxSnap)
			}
			maxSnap = index[e.ID]
		}
		var live []int
		for {
			fr := f.next(t, 10*time.Second)
			e := decodeEnv(t, fr.Data)
			if !fr.HasID {
				t.Fatalf("stream %d: live event without id: %+v", n, fr)
			}
			b.apply(t, e)
			live = append(live, index[e.ID])
			if e.ID == last {
				break
			}
		}
		for j := 1; j < len(live); j++ {
			if live[j] != live[j-1]+1 {
				t.Fatalf("stream %d: live events after synced jump from #%d to #%d (missing or repeated)", n, live[j-1], live[j])
			}
		}
		if len(live) > 0 && live[0] <= maxSnap {
			t.Fatalf("stream %d: live event #%d is not after the snapshot's newest entry #%d", n, live[0], maxSnap)
		}
		if fmt.Sprint(map[string]string(b)) != fmt.Sprint(map[string]string(want)) {
			t.Fatalf("stream %d: snapshot + live folds to %v, want %v", n, b, want)
		}
		t.Logf("stream %d: %d snapshot entries, %d live events", n, len(snap), len(live))
	}
}
