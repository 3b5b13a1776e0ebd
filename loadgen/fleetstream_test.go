package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func sseEvent(id, typ, topic string, n int64) string {
	s := ""
	if id != "" {
		s += "id: " + id + "\n"
	}
	return s + fmt.Sprintf("event: %s\ndata: {\"id\":\"x\",\"topic\":\"%s\",\"type\":\"%s\",\"data\":{\"n\":%d,\"ts\":%d}}\n\n", typ, topic, typ, n, time.Now().UnixNano())
}

// A fleet stream checks every event against its topic's sequence: a
// fresh snapshot must hold every key, a resume sends Last-Event-ID and
// gets no snapshot, and a repeated or skipped n is counted.
func TestFleetStreamChecksSequences(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	lastIDs := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.RawQuery; got != "topic=seller%3A1&topic=fleet%3A0&snapshot=true" {
			t.Errorf("query %q", got)
		}
		lastIDs <- r.Header.Get("Last-Event-ID")
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 10\n\n")
		if conns.Add(1) == 1 {
			bw.WriteString(sseEvent("", "lg", "fleet:0", 1)) // the snapshot: keys k0, k1
			bw.WriteString(sseEvent("", "lg", "fleet:0", 2))
			bw.WriteString("id: c0\nevent: stream.synced\ndata: {\"topics\":[]}\n\n")
			bw.WriteString(sseEvent("c1", "lg", "seller:1", 1))
			bw.WriteString(sseEvent("c2", "lg", "broadcast", 1))
			bw.WriteString(sseEvent("c3", "lg", "fleet:0", 3))
			bw.Flush()
			return // the pod ends the stream
		}
		bw.WriteString(sseEvent("c4", "lg", "seller:1", 2)) // replayed
		bw.WriteString("id: c4\nevent: stream.synced\ndata: {\"topics\":[]}\n\n")
		bw.WriteString(sseEvent("c5", "lg", "seller:1", 2)) // a duplicate
		bw.WriteString(sseEvent("c6", "lg", "seller:1", 4)) // n=3 lost
		bw.Flush()
		_, _ = bufio.NewReader(conn).ReadByte() // until the client goes
	}))
	defer srv.Close()

	w := &worker{}
	r := w.do(Cmd{Op: "open", Secret: benchSecret, Topics: []string{"seller:1"}, Concurrency: 1,
		Fleet: &FleetOpen{Pods: []Endpoint{{ID: 0, URL: srv.URL}, {ID: 1, URL: srv.URL}}, Extra: []string{"fleet:0"}, SnapKeys: 2, RetryMS: -1}})
	if r.Err != "" || r.Failed != 0 {
		t.Fatalf("open: %+v", r)
	}
	defer w.drop()
	for deadline := time.Now().Add(10 * time.Second); w.received.Load() < 6; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("received %d events, want 6", w.received.Load())
		}
	}
	if first, second := <-lastIDs, <-lastIDs; first != "" || second != "c3" {
		t.Fatalf("Last-Event-ID %q then %q, want none then c3", first, second)
	}
	v := w.do(Cmd{Op: "verify", Targets: map[string]int64{"seller:1": 4, "broadcast": 1, "fleet:0": 3}})
	if v.Lost != 1 || v.Dups != 1 || v.StreamsLost != 1 || v.Unaccounted != 0 {
		t.Errorf("lost %d (streams %d), dups %d, unaccounted %d; want 1, 1, 1, 0", v.Lost, v.StreamsLost, v.Dups, v.Unaccounted)
	}
	if v.Snapshots != 2 || v.SnapBad != 0 {
		t.Errorf("snapshots %d, bad %d; want 2, 0", v.Snapshots, v.SnapBad)
	}
	if v.Reconnects != 1 || v.Unexpected != 1 {
		t.Errorf("reconnects %d, unexpected ends %d; want 1 and 1 (pod 0 was still in the Service)", v.Reconnects, v.Unexpected)
	}
	if p := v.PodStats[0]; p.Ended != 1 || p.Back != 1 || v.PodStats[1].Open != 1 {
		t.Errorf("pods %+v: want pod 0's stream back on pod 1", v.PodStats)
	}
	// Short of the targets: the missing tail counts as lost.
	if v := w.do(Cmd{Op: "verify", Targets: map[string]int64{"seller:1": 6, "broadcast": 1, "fleet:0": 3}}); v.Lost != 3 {
		t.Errorf("lost %d with two more published, want 3", v.Lost)
	}
}

// A stream its pod ends is closed before it reconnects: a worker that
// kept the ended connections open ran out of files during a rollout.
func TestFleetStreamClosesEndedConnections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no finalizer closes a leaked socket meanwhile
	const ends = 200
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		n := conns.Add(1)
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 1\n\n")
		bw.WriteString(sseEvent(fmt.Sprintf("c%d", n), "lg", "seller:1", int64(n)))
		bw.Flush()
		if n <= ends {
			return // the pod ends the stream
		}
		_, _ = bufio.NewReader(conn).ReadByte() // until the client goes
	}))
	defer srv.Close()
	before := openFiles(t)
	w := &worker{}
	r := w.do(Cmd{Op: "open", Secret: benchSecret, Topics: []string{"seller:1"}, Concurrency: 1,
		Fleet: &FleetOpen{Pods: []Endpoint{{ID: 0, URL: srv.URL}}, RetryMS: -1}})
	if r.Err != "" || r.Failed != 0 {
		t.Fatalf("open: %+v", r)
	}
	defer w.drop()
	for deadline := time.Now().Add(20 * time.Second); conns.Load() <= ends; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", conns.Load(), ends+1)
		}
	}
	// The test's server closed its side of every ended stream; what is
	// still open is the worker's.
	if grown := openFiles(t) - before; grown > 20 {
		t.Errorf("%d more files open after %d ended streams, want at most a few", grown, ends)
	}
}

func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
