package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"notify/pkg/devtoken"
	"notify/pkg/sseclient"
)

// Fleet streams (loadgen fleet): each stream is a seller on its own topic
// (and broadcast), some with a second topic opened with a snapshot. They
// connect through an emulated Service (service.go) and, when a pod ends
// them, reconnect as the project's browser client (clients/js) does: with
// Last-Event-ID, to whichever pod the Service picks, after a full-jitter
// backoff from the server's retry time that grows while pods refuse.
// Every event is checked against its topic's sequence number n.

// FleetOpen configures a worker's streams as fleet streams.
type FleetOpen struct {
	Pods     []Endpoint `json:"pods"`
	Quota    int        `json:"quota"`     // streams per pod for this worker; 0: no cap
	Extra    []string   `json:"extra"`     // per stream: a second topic opened with snapshot=true, or ""
	SnapKeys int64      `json:"snap_keys"` // keys each second topic's state holds before the streams open
	RetryMS  int        `json:"retry_ms"`  // backoff base of a reconnect; < 0: the server's retry field
}

// FleetReply is what fleet streams add to a worker's reply.
type FleetReply struct {
	LatB        HistSnap         `json:"lat_b,omitempty"` // broadcast publish→receive
	PodStats    map[int]PodStat  `json:"pod_stats,omitempty"`
	Reconnects  int64            `json:"reconnects,omitempty"`
	Failures    map[string]int64 `json:"failures,omitempty"`     // connect attempts that failed, by class (failclass.go)
	Unexpected  int64            `json:"unexpected,omitempty"`   // streams ended by a pod still in the Service
	Snapshots   int64            `json:"snapshots,omitempty"`    // stream.synced received
	SnapBad     int64            `json:"snap_bad,omitempty"`     // a fresh snapshot without every key, or one on a resume
	Unknown     int64            `json:"unknown,omitempty"`      // events of a topic the stream does not have
	Lost        int64            `json:"lost,omitempty"`         // verify: gaps and events missing at the end
	Unaccounted int64            `json:"unaccounted,omitempty"`  // verify: events beyond the last one accepted
	NoCursor    int64            `json:"no_cursor,omitempty"`    // reconnects without a cursor (none received yet)
	StreamsLost int64            `json:"streams_lost,omitempty"` // verify: streams missing at least one event
}

// PodStat is one pod's streams as the workers saw them.
type PodStat struct {
	Open       int64 `json:"open"`
	Ended      int64 `json:"ended"` // streams the pod ended
	Back       int64 `json:"back"`  // of those, re-established on some pod
	LastBackNS int64 `json:"last_back_ns"`
	MaxGapUS   int64 `json:"max_gap_us"` // longest time from an end to being back
}

func (r *FleetReply) merge(o FleetReply) {
	if r.LatB == nil {
		r.LatB = HistSnap{}
	}
	r.LatB.Merge(o.LatB)
	if r.PodStats == nil {
		r.PodStats = map[int]PodStat{}
	}
	for id, p := range o.PodStats {
		q := r.PodStats[id]
		q.Open += p.Open
		q.Ended += p.Ended
		q.Back += p.Back
		q.LastBackNS = max(q.LastBackNS, p.LastBackNS)
		q.MaxGapUS = max(q.MaxGapUS, p.MaxGapUS)
		r.PodStats[id] = q
	}
	r.Reconnects += o.Reconnects
	for c, n := range o.Failures {
		if r.Failures == nil {
			r.Failures = map[string]int64{}
		}
		r.Failures[c] += n
	}
	r.Unexpected += o.Unexpected
	r.Snapshots += o.Snapshots
	r.SnapBad += o.SnapBad
	r.Unknown += o.Unknown
	r.Lost += o.Lost
	r.Unaccounted += o.Unaccounted
	r.NoCursor += o.NoCursor
	r.StreamsLost += o.StreamsLost
}

// seller is a fleet stream's own state; only its goroutine writes it.
type seller struct {
	extra  string // second topic, or ""
	pod    int    // endpoint ID holding the stream
	lastS  atomic.Int64
	lastB  atomic.Int64
	lastE  atomic.Int64
	cursor string // the Last-Event-ID this connection resumed from
	synced bool   // stream.synced seen on this connection
	snapN  int64  // snapshot entries on this connection
	gaps   atomic.Int64
}

// query is what the stream's request adds after its own topic.
func (s *lstream) query() string {
	if s.sel == nil || s.sel.extra == "" {
		return ""
	}
	return "&topic=" + url.QueryEscape(s.sel.extra) + "&snapshot=true"
}

type fleetState struct {
	svc      *service
	retry    time.Duration // < 0: the server's retry field
	snapKeys int64
	latB     Hist

	mu   sync.Mutex
	pods map[int]*PodStat

	reconnects, unexpected, snapshots, snapBad, unknown, noCursor atomic.Int64
	failures                                                      failures
}

var errDropping = errors.New("loadgen: dropping")

func (w *worker) openFleet(c Cmd) Reply {
	o := c.Fleet
	f := &fleetState{svc: newService(o.Pods, o.Quota), retry: time.Duration(o.RetryMS) * time.Millisecond,
		snapKeys: o.SnapKeys, pods: map[int]*PodStat{}}
	w.fleet = f
	w.streams = make([]*lstream, len(c.Topics))
	for i, t := range c.Topics {
		s := &lstream{idx: c.First + i, topic: t, sel: &seller{pod: -1}}
		topics := []string{t}
		if i < len(o.Extra) && o.Extra[i] != "" {
			s.sel.extra = o.Extra[i]
			topics = append(topics, o.Extra[i])
		}
		tok, err := devtoken.Subscriber(c.Secret, "notifications", "lg-"+strconv.Itoa(s.idx), topics, 4*time.Hour)
		if err != nil {
			return Reply{Err: err.Error()}
		}
		s.token = tok
		w.streams[i] = s
	}
	start := time.Now()
	sem := make(chan struct{}, max(c.Concurrency, 1))
	var wg sync.WaitGroup
	for _, s := range w.streams {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			if err := w.connectFleet(s, 0); err != nil {
				w.failed.Add(1)
				fmt.Fprintf(os.Stderr, "loadgen worker: stream %d: %v\n", s.idx, err)
				return
			}
			w.connect.Add(time.Since(t0))
			w.wg.Add(1)
			go w.runFleet(s)
		})
	}
	wg.Wait()
	r := w.stats()
	r.EstablishUS = time.Since(start).Microseconds()
	return r
}

// connectFleet connects s through the Service.
func (w *worker) connectFleet(s *lstream, gen int) error {
	cursor := ""
	if s.p != nil {
		cursor = s.p.LastEventID()
	}
	ep, err := w.fleet.svc.connect(func(ep Endpoint) error {
		if w.dropping.Load() {
			return errDropping
		}
		conn, br, err := w.request(s, ep.URL, gen)
		if err != nil {
			w.fleet.failures.add(err)
			return err
		}
		w.connMu.Lock()
		defer w.connMu.Unlock()
		if w.dropping.Load() {
			_ = conn.Close()
			return errDropping
		}
		s.conn = conn
		w.startParser(s, br)
		return nil
	})
	if errors.Is(err, errNoPod) { // no pod tried: each was at this worker's quota
		w.fleet.failures.add(err)
	}
	if err != nil {
		return err
	}
	s.sel.pod, s.sel.cursor, s.sel.synced, s.sel.snapN = ep.ID, cursor, false, 0
	w.open.Add(1)
	return nil
}

// runFleet reads s until the worker drops it, reconnecting whenever its
// pod ends it.
func (w *worker) runFleet(s *lstream) {
	defer w.wg.Done()
	for {
		w.consumeFleet(s)
		w.connMu.Lock()
		_ = s.conn.Close() // the pod ended it: the socket is ours to close
		w.connMu.Unlock()
		w.open.Add(-1)
		from := s.sel.pod
		w.fleet.svc.release(from)
		if w.dropping.Load() {
			return
		}
		ended := time.Now()
		w.fleet.noteEnd(from)
		if !w.reconnectFleet(s) {
			if !w.dropping.Load() {
				w.failed.Add(1)
				fmt.Fprintf(os.Stderr, "loadgen worker: stream %d: no pod took it back\n", s.idx)
			}
			return
		}
		w.fleet.noteBack(from, ended, time.Now())
	}
}

// maxBackoff caps a reconnect's wait, as the browser client's default.
const maxBackoff = 30 * time.Second

// reconnectFleet offers the stream to the Service until a pod takes it,
// waiting before each attempt a uniformly random time up to the server's
// retry time, doubled after each refusal up to maxBackoff (the browser
// client's full jitter): clients that lost their pod together do not
// come back together, and refusals do not turn into a storm.
func (w *worker) reconnectFleet(s *lstream) bool {
	if s.p.LastEventID() == "" {
		w.fleet.noCursor.Add(1)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for gen := 1; time.Now().Before(deadline); gen++ {
		limit := min(maxBackoff, w.fleet.delay(s.p)<<min(gen-1, 10))
		if !w.pause(rand.N(limit + 1)) {
			return false
		}
		if err := w.connectFleet(s, gen); err == nil {
			w.fleet.reconnects.Add(1)
			return true
		} else if errors.Is(err, errDropping) {
			return false
		}
	}
	return false
}

// pause sleeps d unless the worker drops its streams meanwhile.
func (w *worker) pause(d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); {
		if w.dropping.Load() {
			return false
		}
		time.Sleep(min(50*time.Millisecond, time.Until(end)))
	}
	return !w.dropping.Load()
}

// delay is the reconnection time: the configured one, or the server's
// retry field (3 s, a browser's usual default, if it sent none).
func (f *fleetState) delay(p *sseclient.Parser) time.Duration {
	if f.retry >= 0 {
		return f.retry
	}
	if d, ok := p.Retry(); ok {
		return d
	}
	return 3 * time.Second
}

// consumeFleet reads one connection of s to its end, checking every
// event against its topic's sequence.
func (w *worker) consumeFleet(s *lstream) {
	sel := s.sel
	prevID := sel.cursor
	for {
		ev, err := s.p.Next()
		if err != nil {
			return
		}
		now := time.Now()
		if strings.HasPrefix(ev.Type, "stream.") {
			if ev.Type == "stream.synced" {
				sel.synced = true
				w.fleet.noteSynced(sel)
			} else {
				w.resets.Add(1)
			}
			prevID = ev.ID
			continue
		}
		n := fieldInt(ev.Data, `"n":`)
		topic := fieldString(ev.Data, `"topic":"`)
		if sel.extra != "" && !sel.synced && ev.ID == prevID {
			// A snapshot entry (no id field): the state, not the sequence.
			sel.snapN++
			if topic == sel.extra && n > sel.lastE.Load() {
				sel.lastE.Store(n)
			}
			continue
		}
		prevID = ev.ID
		var last *atomic.Int64
		switch {
		case topic == s.topic:
			last = &sel.lastS
		case topic == "broadcast":
			last = &sel.lastB
		case topic == sel.extra && topic != "":
			last = &sel.lastE
		default:
			w.fleet.unknown.Add(1)
			continue
		}
		if ts := fieldInt(ev.Data, `"ts":`); ts > 0 {
			if last == &sel.lastB {
				w.fleet.latB.Add(now.Sub(time.Unix(0, ts)))
			} else {
				w.lat.Add(now.Sub(time.Unix(0, ts)))
			}
		}
		w.received.Add(1)
		prev := last.Load()
		switch {
		case n == prev+1:
		case n <= prev:
			w.dups.Add(1)
		default:
			w.gaps.Add(n - prev - 1)
			sel.gaps.Add(n - prev - 1)
		}
		if n > prev {
			last.Store(n)
		}
	}
}

// noteSynced checks a snapshot: a fresh stream gets every key of its
// second topic, a resumed one none.
func (f *fleetState) noteSynced(sel *seller) {
	f.snapshots.Add(1)
	if (sel.cursor == "" && sel.snapN != f.snapKeys) || (sel.cursor != "" && sel.snapN != 0) {
		f.snapBad.Add(1)
	}
}

func (f *fleetState) pod(id int) *PodStat {
	p := f.pods[id]
	if p == nil {
		p = &PodStat{}
		f.pods[id] = p
	}
	return p
}

// noteEnd counts a stream its pod ended; a pod still in the Service is
// not terminating, so that end is unexpected.
func (f *fleetState) noteEnd(id int) {
	f.mu.Lock()
	f.pod(id).Ended++
	f.mu.Unlock()
	if f.svc.has(id) {
		f.unexpected.Add(1)
	}
}

func (f *fleetState) noteBack(id int, ended, back time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pod(id)
	p.Back++
	p.LastBackNS = max(p.LastBackNS, back.UnixNano())
	p.MaxGapUS = max(p.MaxGapUS, back.Sub(ended).Microseconds())
}

func (f *fleetState) stats() FleetReply {
	r := FleetReply{LatB: f.latB.Snapshot(), PodStats: map[int]PodStat{},
		Reconnects: f.reconnects.Load(), Failures: f.failures.snapshot(), Unexpected: f.unexpected.Load(),
		Snapshots: f.snapshots.Load(), SnapBad: f.snapBad.Load(), Unknown: f.unknown.Load(), NoCursor: f.noCursor.Load()}
	f.mu.Lock()
	for id, p := range f.pods {
		r.PodStats[id] = *p
	}
	f.mu.Unlock()
	for id, n := range f.svc.counts() {
		p := r.PodStats[id]
		p.Open = int64(n)
		r.PodStats[id] = p
	}
	return r
}

// verifyFleet counts, per stream and topic, the events it should have
// received (targets: topic → last n accepted) and did not.
func (w *worker) verifyFleet(targets map[string]int64) FleetReply {
	r := w.fleet.stats()
	for _, s := range w.streams {
		missing := s.sel.gaps.Load()
		for _, c := range []struct {
			topic string
			last  *atomic.Int64
		}{{s.topic, &s.sel.lastS}, {"broadcast", &s.sel.lastB}, {s.sel.extra, &s.sel.lastE}} {
			if c.topic == "" {
				continue
			}
			want, got := targets[c.topic], c.last.Load()
			if got < want {
				missing += want - got
			} else {
				r.Unaccounted += got - want
			}
		}
		if missing > 0 {
			r.StreamsLost++
		}
		r.Lost += missing
	}
	return r
}

// fieldString finds key (e.g. `"topic":"`) in a JSON text and returns the
// string after it, up to the next quote; "" if absent.
func fieldString(s, key string) string {
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	if j := strings.IndexByte(s, '"'); j >= 0 {
		return s[:j]
	}
	return ""
}
