package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
	"notify/pkg/redisbus"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// Redis restarted empty: a snapshot stream resuming from its old cursor
// gets stream.reset (without id) and an empty snapshot, never the stale
// state; the state read is empty; streams open through the loss announce
// it and continue.
func TestSnapshotAfterRedisLostData(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("fleet")
	tok := s.SubscriberToken("admin", "device:1")
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "a", 1)
	publishKeyed(t, w, pub, []string{"device:1"}, "s", "b", 2)
	f := openFrames(t, r, tok, "?topic=device:1&snapshot=true", nil)
	snap, synced := f.untilSynced(t, 5*time.Second)
	if len(snap) != 2 {
		t.Fatalf("snapshot before the loss: %+v", snap)
	}

	s.Redis.Restart() // no persistence: it comes back empty
	testwait.Until(t, 10*time.Second, "state readable again", func() bool {
		status, _, _ := getJSON(t, r, tok, "/v1/state", url.Values{"topic": {"device:1"}})
		return status == 200
	})
	if d := readStateDoc(t, r, tok, "device:1"); len(d.Entries) != 0 {
		t.Fatalf("state after the loss: %+v, want none", d.Entries)
	}
	g := openFrames(t, r, tok, "?topic=device:1&snapshot=true&lastEventId="+synced.ID, nil)
	before, _ := g.untilSynced(t, 5*time.Second)
	if len(before) != 1 || before[0].Type != "stream.reset" || before[0].HasID || !strings.Contains(before[0].Data, `"device:1"`) {
		t.Fatalf("resume after the loss: %+v, want only stream.reset without id (an empty snapshot)", before)
	}
	id := publishKeyed(t, w, pub, []string{"device:1"}, "s", "c", 3)
	if fr := g.next(t, 5*time.Second); decodeEnv(t, fr.Data).ID != id {
		t.Fatalf("after the loss: %+v, want %s", fr, id)
	}
	// The stream open through the loss says stream.reset, then continues.
	var types []string
	for {
		fr := f.next(t, 10*time.Second)
		types = append(types, fr.Type)
		if fr.Type == "s" && decodeEnv(t, fr.Data).ID == id {
			break
		}
	}
	if types[0] != "stream.reset" {
		t.Fatalf("stream open through the loss got %v, want stream.reset first", types)
	}
}

// Redis Cluster: keyed topics over every partition (so every master's
// slots), a master restarted (AOF on) mid-run: the state reads and the
// snapshot streams opened before the restart fold to exactly the
// publishes' state.
func TestClusterKeyedStateAndMasterRestart(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, redistest.WithAOF())
	s := stack.NewBare(t, map[string]string{"REDIS_CLUSTER_ADDRS": cl.Addrs()})
	w, r := s.StartWrite(nil), s.StartRead(nil)
	var topics []string // two per partition: every master's slots
	per := map[int]int{}
	for i := 0; len(topics) < 2*redisbus.Partitions; i++ {
		tp := fmt.Sprintf("device:%d", i)
		if p := (redisbus.Keys{Prefix: "notify:"}).Partition(tp); per[p] < 2 {
			per[p]++
			topics = append(topics, tp)
		}
	}
	pub := publisherFor(s, w)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	model := board{} // "topic/key" → data
	publishRound := func(round int, at func(i int)) {
		t.Helper()
		for i, tp := range topics {
			if at != nil {
				at(i)
			}
			key := fmt.Sprintf("k%d", (i+round)%3)
			var data any = map[string]int{"round": round}
			if round == 2 && i%4 == 0 {
				data = nil // removal
			}
			if _, err := pub.Publish(ctx, publisher.Notification{Topics: []string{tp}, Type: "device.status", Key: key, Data: data}); err != nil {
				t.Fatalf("publish on %s: %v", tp, err)
			}
			if data == nil {
				delete(model, tp+"/"+key)
			} else {
				model[tp+"/"+key] = fmt.Sprintf(`{"round":%d}`, round)
			}
		}
	}
	publishRound(0, nil)
	publishRound(1, nil)

	tok := s.SubscriberToken("admin", topics...)
	var streams []*frames
	var folds []board
	var mine []map[string]bool // each stream's topics
	for at := 0; at < len(topics); at += 31 {
		q := url.Values{"snapshot": {"true"}}
		set := map[string]bool{}
		for _, tp := range topics[at:min(at+31, len(topics))] {
			q.Add("topic", tp)
			set[tp] = true
		}
		mine = append(mine, set)
		f := openFrames(t, r, tok, "?"+q.Encode(), nil)
		snap, _ := f.untilSynced(t, 10*time.Second)
		b := board{}
		for _, fr := range snap {
			e := decodeEnv(t, fr.Data)
			b[e.Topic+"/"+*e.Key] = string(e.Data)
		}
		streams, folds = append(streams, f), append(folds, b)
	}

	publishRound(2, func(i int) {
		if i == 40 {
			cl.Masters[1].Kill()
			cl.Masters[1].Restart()
			cl.WaitOK(t)
		}
	})

	for n, f := range streams {
		b := folds[n]
		want := board{}
		for k, v := range model {
			if tp, _, _ := strings.Cut(k, "/"); mine[n][tp] {
				want[k] = v
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for fmt.Sprint(map[string]string(b)) != fmt.Sprint(map[string]string(want)) {
			if time.Now().After(deadline) {
				t.Fatalf("stream %d folds to\n%v\nwant\n%v", n, b, want)
			}
			fr := f.next(t, 30*time.Second)
			if fr.Type == "stream.reset" {
				t.Fatalf("stream %d: %s although the restarted master kept its data", n, fr.Data)
			}
			e := decodeEnv(t, fr.Data)
			if string(e.Data) == "null" {
				delete(b, e.Topic+"/"+*e.Key)
			} else {
				b[e.Topic+"/"+*e.Key] = string(e.Data)
			}
		}
	}
	for _, tp := range topics {
		got := board{}
		for _, e := range readStateDoc(t, r, tok, tp).Entries {
			got[tp+"/"+*e.Key] = string(e.Data)
		}
		want := board{}
		for k, v := range model {
			if strings.HasPrefix(k, tp+"/") {
				want[k] = v
			}
		}
		if fmt.Sprint(map[string]string(got)) != fmt.Sprint(map[string]string(want)) {
			t.Fatalf("state of %s: %v, want %v", tp, got, want)
		}
	}
	// History reads (one MULTI on the topic's node) too.
	for _, tp := range topics[:8] {
		if h := readHistoryDoc(t, r, tok, url.Values{"topic": {tp}}); len(h.Events) != 3 || h.Next != nil {
			t.Fatalf("history of %s: %d events, next %v; want the 3 published", tp, len(h.Events), h.Next)
		}
	}
}
