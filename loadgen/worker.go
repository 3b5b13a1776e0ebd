package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

// A worker process holds a share of the streams (each process may open at
// most 20,000 files). The driver talks to it with one JSON command per line
// on stdin and reads one JSON reply per line on stdout.

// Cmd is a driver → worker command.
type Cmd struct {
	Op          string           `json:"op"`              // open, stats, reset, drop, resume, close
	Bases       []string         `json:"bases,omitempty"` // stream i connects to Bases[i%len]
	Baseline    bool             `json:"baseline,omitempty"`
	Secret      string           `json:"secret,omitempty"`
	First       int              `json:"first,omitempty"`  // global index of the first stream
	Topics      []string         `json:"topics,omitempty"` // one per stream
	Concurrency int              `json:"concurrency,omitempty"`
	Targets     map[string]int64 `json:"targets,omitempty"` // resume: topic → last n published
	Gen         int              `json:"gen,omitempty"`     // shifts source addresses on reconnect
	Fleet       *FleetOpen       `json:"fleet,omitempty"`   // open: sellers behind an emulated Service (fleetstream.go)
	Pods        []Endpoint       `json:"pods,omitempty"`    // pods: the Service's endpoints from now on
}

// Reply is a worker → driver answer.
type Reply struct {
	Err         string   `json:"err,omitempty"`
	Open        int64    `json:"open"`
	Failed      int64    `json:"failed"`
	Received    int64    `json:"received"`
	Gaps        int64    `json:"gaps"`
	Dups        int64    `json:"dups"`
	Resets      int64    `json:"resets"`
	Ended       int64    `json:"ended"` // streams the server ended
	Lat         HistSnap `json:"lat,omitempty"`
	Connect     HistSnap `json:"connect,omitempty"`
	EstablishUS int64    `json:"establish_us,omitempty"`
	CaughtUpUS  int64    `json:"caught_up_us,omitempty"`
	NotCaught   int64    `json:"not_caught,omitempty"`
	FleetReply
}

type lstream struct {
	idx    int
	topic  string
	token  string
	conn   net.Conn
	p      *sseclient.Parser
	last   int64 // last n seen on the stream's topic
	target int64 // resume: caught up once last >= target
	caught bool
	sel    *seller // fleet streams only (fleetstream.go)
}

type worker struct {
	streams  []*lstream
	wg       sync.WaitGroup
	dropping atomic.Bool

	received, gaps, dups, resets, ended, open, failed atomic.Int64
	lat, connect                                      Hist

	pending  atomic.Int64 // resume: streams not yet caught up
	caughtAt atomic.Int64 // unix ns when pending reached 0
	resumeAt time.Time
	bases    []string
	baseline bool

	connMu sync.Mutex // a reconnecting stream's new connection against drop
	fleet  *fleetState
}

func runWorker() error {
	w := &worker{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c Cmd
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			return fmt.Errorf("worker: bad command: %w", err)
		}
		r := w.do(c)
		if err := out.Encode(r); err != nil {
			return err
		}
		if c.Op == "close" {
			return nil
		}
	}
	w.drop()
	return in.Err()
}

func (w *worker) do(c Cmd) Reply {
	switch c.Op {
	case "open":
		if c.Fleet != nil {
			return w.openFleet(c)
		}
		w.bases, w.baseline = c.Bases, c.Baseline
		w.streams = make([]*lstream, len(c.Topics))
		for i, t := range c.Topics {
			s := &lstream{idx: c.First + i, topic: t}
			if !c.Baseline {
				tok, err := devtoken.Subscriber(c.Secret, "notifications", "lg-"+strconv.Itoa(s.idx), []string{t}, 4*time.Hour)
				if err != nil {
					return Reply{Err: err.Error()}
				}
				s.token = tok
			}
			w.streams[i] = s
		}
		start := time.Now()
		w.connectAll(c.Concurrency, 0)
		r := w.stats()
		r.EstablishUS = time.Since(start).Microseconds()
		return r
	case "stats":
		return w.stats()
	case "pods":
		w.fleet.svc.setEndpoints(c.Pods)
		return w.stats()
	case "verify":
		r := w.stats()
		r.FleetReply = w.verifyFleet(c.Targets)
		return r
	case "reset":
		w.received.Store(0)
		w.gaps.Store(0)
		w.dups.Store(0)
		w.resets.Store(0)
		w.lat.Reset()
		return w.stats()
	case "drop", "close":
		w.drop()
		return w.stats()
	case "resume":
		w.pending.Store(0)
		w.caughtAt.Store(0)
		for _, s := range w.streams {
			s.target, s.caught = c.Targets[s.topic], false
			if s.last >= s.target {
				s.caught = true
			} else {
				w.pending.Add(1)
			}
		}
		w.resumeAt = time.Now()
		w.connectAll(c.Concurrency, c.Gen)
		r := w.stats()
		r.EstablishUS = time.Since(w.resumeAt).Microseconds()
		deadline := time.Now().Add(30 * time.Second)
		for w.pending.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if at := w.caughtAt.Load(); at > 0 {
			r.CaughtUpUS = (at - w.resumeAt.UnixNano()) / 1000
		} else if w.pending.Load() == 0 {
			r.CaughtUpUS = r.EstablishUS
		}
		r.NotCaught = w.pending.Load()
		r.Gaps, r.Dups, r.Received = w.gaps.Load(), w.dups.Load(), w.received.Load()
		return r
	}
	return Reply{Err: "unknown op " + c.Op}
}

func (w *worker) stats() Reply {
	r := Reply{
		Open: w.open.Load(), Failed: w.failed.Load(), Received: w.received.Load(), Gaps: w.gaps.Load(),
		Dups: w.dups.Load(), Resets: w.resets.Load(), Ended: w.ended.Load(),
		Lat: w.lat.Snapshot(), Connect: w.connect.Snapshot(),
	}
	if w.fleet != nil {
		r.FleetReply = w.fleet.stats()
	}
	return r
}

// connectAll opens every stream with at most conc dials in flight.
func (w *worker) connectAll(conc, gen int) {
	conc = max(conc, 1)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for _, s := range w.streams {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			if err := w.dial(s, gen); err != nil {
				w.failed.Add(1)
				fmt.Fprintf(os.Stderr, "loadgen worker: stream %d: %v\n", s.idx, err)
				return
			}
			w.connect.Add(time.Since(t0))
			w.open.Add(1)
			w.wg.Add(1)
			go w.read(s)
		}()
	}
	wg.Wait()
}

// sourceAddr spreads streams over 127.0.0.2-251, 1,000 per address.
func sourceAddr(idx, gen int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+(idx/1000+gen*37)%250))}
}

func (w *worker) dial(s *lstream, gen int) error {
	conn, br, err := w.request(s, w.bases[s.idx%len(w.bases)], gen)
	if err != nil {
		return err
	}
	s.conn = conn
	w.startParser(s, br)
	return nil
}

// startParser reads the stream from br; a parser carries over reconnects
// (it holds the last event ID and the server's retry).
func (w *worker) startParser(s *lstream, br *bufio.Reader) {
	if s.p == nil {
		s.p = sseclient.NewParser(br, &sseclient.ParseOptions{BufferSize: 512})
	} else {
		s.p.Reset(br)
	}
}

// request connects s to the server at base and reads the response head;
// the connection is the stream's once the status is 200.
func (w *worker) request(s *lstream, base string, gen int) (net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, nil, err
	}
	d := net.Dialer{LocalAddr: sourceAddr(s.idx, gen), Timeout: 10 * time.Second}
	var conn net.Conn
	for attempt := 0; ; attempt++ {
		conn, err = d.Dial("tcp", u.Host)
		if err == nil || attempt == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, nil, err
	}
	var req strings.Builder
	if w.baseline {
		fmt.Fprintf(&req, "GET /stream?topic=%s HTTP/1.1\r\nHost: %s\r\n", url.QueryEscape(s.topic), u.Host)
	} else {
		fmt.Fprintf(&req, "GET /v1/stream?topic=%s%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n", url.QueryEscape(s.topic), s.query(), u.Host, s.token)
	}
	req.WriteString("Accept: text/event-stream\r\n")
	if s.p != nil && s.p.LastEventID() != "" {
		req.WriteString("Last-Event-ID: " + s.p.LastEventID() + "\r\n")
	}
	req.WriteString("\r\n")
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write([]byte(req.String())); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 1024)
	status, length, _, err := readHead(br) // the stream's body lasts until the connection ends
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if status != http.StatusOK {
		detail := problemDetail(br, length)
		conn.Close()
		return nil, nil, &statusError{code: status, detail: detail}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

func (w *worker) read(s *lstream) {
	defer w.wg.Done()
	defer w.open.Add(-1)
	for {
		ev, err := s.p.Next()
		if err != nil {
			if !w.dropping.Load() {
				w.ended.Add(1)
			}
			return
		}
		now := time.Now()
		if strings.HasPrefix(ev.Type, "stream.") {
			w.resets.Add(1)
			continue
		}
		ts, n := fieldInt(ev.Data, `"ts":`), fieldInt(ev.Data, `"n":`)
		if ts > 0 {
			w.lat.Add(now.Sub(time.Unix(0, ts)))
		}
		w.received.Add(1)
		if n <= 0 {
			continue
		}
		if s.last > 0 {
			if n <= s.last {
				w.dups.Add(1)
			} else if n > s.last+1 {
				w.gaps.Add(n - s.last - 1)
			}
		}
		if n > s.last {
			s.last = n
		}
		if !s.caught && s.last >= s.target && s.target > 0 {
			s.caught = true
			if w.pending.Add(-1) == 0 {
				w.caughtAt.Store(now.UnixNano())
			}
		}
	}
}

// drop closes every connection at once (RST, no TIME_WAIT) and waits
// for the readers to stop.
func (w *worker) drop() {
	w.connMu.Lock()
	w.dropping.Store(true)
	for _, s := range w.streams {
		if c, ok := s.conn.(*net.TCPConn); ok {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	}
	w.connMu.Unlock()
	w.wg.Wait()
	w.dropping.Store(false)
}

// fieldInt finds key (e.g. `"ts":`) in a JSON text and parses the integer
// after it; 0 if absent.
func fieldInt(s, key string) int64 {
	i := strings.LastIndex(s, key)
	if i < 0 {
		return 0
	}
	s = s[i+len(key):]
	var v int64
	for j := 0; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
		v = v*10 + int64(s[j]-'0')
	}
	return v
}
