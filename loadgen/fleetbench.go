package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"notify/pkg/devtoken"
)

// loadgen fleet: a whole fleet on one machine. Sellers' streams (one
// seller:<n> topic each, plus broadcast) on several read-api pods behind
// an emulated Service, the seller workload from several publishers, and
// a rolling restart of every pod while it runs; every stream's events
// are checked by sequence number, and nothing may be lost or repeated.

type fleetConfig struct {
	binDir, readBin string
	scale           float64
	streams, pods   int
	duration, drain time.Duration
	rate            float64       // targeted notifications/s over the sellers
	batchShare      float64       // share of the sellers published in batches
	bcastEvery      time.Duration // one broadcast per this
	snapshot        string        // auto, on, off
	snapShare       float64       // share of streams with a snapshot topic
	snapKeys        int
	rollout         string  // surge, inplace
	rolloutAt       float64 // share of the run before the rollout starts
	podCap          int     // streams per pod the Service allows
	perWorker       int
	retry           time.Duration // < 0: the server's retry field
	profileDir      string
	out             string
}

type fleetPod struct {
	id     int
	proc   *Proc
	pprof  string // host:port of net/http/pprof, or ""
	termAt time.Time
	exitIn time.Duration
	exitOK bool
}

type fleetBench struct {
	cfg      fleetConfig
	dir      string
	redis    *Proc
	redisURL string
	write    *Proc
	pubToken string
	podsMu   sync.Mutex  // all grows during the rollout while the sampler reads it
	all      []*fleetPod // every read-api process, by ID
	slots    []*fleetPod // the pod serving each slot now
	f        *Fleet
	rows     []Row
	details  map[string]any
}

func runFleetBench(args []string) error {
	fs := flag.NewFlagSet("fleet", flag.ExitOnError)
	c := fleetConfig{}
	fs.StringVar(&c.binDir, "bin", "bin", "directory holding write-api and read-api")
	fs.Float64Var(&c.scale, "scale", 1, "multiply streams, rates and per-pod caps (0.05: 4,500 streams); also shortens the run and the drain")
	fs.IntVar(&c.pods, "pods", 5, "read-api pods")
	dur := fs.Duration("duration", 0, "publishing time (default 10m × scale, at least 90s)")
	drain := fs.Duration("drain-timeout", 0, "read-api DRAIN_TIMEOUT (default 25s, shorter below scale 0.25)")
	fs.Float64Var(&c.rate, "rate", 1000, "targeted notifications/s over the sellers (× scale)")
	fs.Float64Var(&c.batchShare, "batch-share", 0.5, "share of the sellers whose notifications go in batch requests")
	fs.DurationVar(&c.bcastEvery, "broadcast-every", 10*time.Second, "one broadcast per this")
	fs.StringVar(&c.snapshot, "snapshot", "auto", "streams opening with a snapshot of a fleet: topic: auto (when the server has keyed state), on, off")
	fs.Float64Var(&c.snapShare, "snapshot-share", 0.05, "share of the streams with a snapshot topic")
	fs.IntVar(&c.snapKeys, "snapshot-keys", 20, "keys in each fleet: topic's state")
	fs.StringVar(&c.rollout, "rollout", "surge", "surge: start the replacement, then SIGTERM the old pod (maxSurge 1, maxUnavailable 0, as k8s/base); inplace: SIGTERM, wait for exit, restart")
	fs.Float64Var(&c.rolloutAt, "rollout-at", 1.0/3, "share of the run before the rollout starts")
	fs.IntVar(&c.podCap, "pod-cap", 19500, "streams the Service puts on one pod (× scale): under the 20,000 open files a process may hold")
	fs.IntVar(&c.perWorker, "per-worker", 15000, "streams per loadgen worker process (each under 20,000 open files)")
	fs.DurationVar(&c.retry, "retry", -1, "wait before a stream reconnects (negative: the server's retry field, as EventSource)")
	fs.StringVar(&c.profileDir, "profile", "", "write read-api pprof profiles here (needs <bin>/pprof/read-api, built with -tags pprof)")
	fs.StringVar(&c.out, "json", "fleet-results.json", "where to write the JSON results")
	_ = fs.Parse(args)
	if c.scale <= 0 || c.pods < 2 || c.rolloutAt <= 0 || c.rolloutAt >= 1 {
		return errors.New("fleet: -scale must be > 0, -pods at least 2, -rollout-at in (0,1)")
	}
	if c.rollout != "surge" && c.rollout != "inplace" {
		return fmt.Errorf("fleet: -rollout %q: surge or inplace", c.rollout)
	}
	if c.snapshot != "auto" && c.snapshot != "on" && c.snapshot != "off" {
		return fmt.Errorf("fleet: -snapshot %q: auto, on or off", c.snapshot)
	}
	c.streams = max(c.pods, int(90000*c.scale))
	c.podCap = max(1, int(float64(c.podCap)*c.scale))
	c.duration = *dur
	if c.duration == 0 {
		c.duration = max(90*time.Second, time.Duration(float64(10*time.Minute)*c.scale))
	}
	c.drain = *drain
	if c.drain == 0 {
		c.drain = min(25*time.Second, max(5*time.Second, time.Duration(float64(100*time.Second)*c.scale)))
	}
	c.readBin = filepath.Join(c.binDir, "read-api")
	if c.profileDir != "" {
		c.readBin = filepath.Join(c.binDir, "pprof", "read-api")
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	b := &fleetBench{cfg: c, details: map[string]any{}}
	defer b.stop()
	sig := make(chan os.Signal, 1)
	// Also when started with SIGINT ignored (in the background of a script).
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\nloadgen fleet: %v: stopping\n", s)
		if b.dir != "" {
			_ = os.RemoveAll(b.dir)
		}
		os.Exit(130) // every child dies with loadgen (childAttr)
	}()
	return b.run()
}

// stop ends every process the bench started, whatever happened.
func (b *fleetBench) stop() {
	if b.f != nil {
		b.f.Close()
	}
	for _, p := range b.pods() {
		p.proc.Stop()
	}
	b.write.Stop()
	b.redis.Stop()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

func (b *fleetBench) run() error {
	c := b.cfg
	if err := checkFiles(c); err != nil {
		return err
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "notify-fleet-"); err != nil {
		return err
	}
	if b.redis, b.redisURL, err = startRedis(b.dir); err != nil {
		return err
	}
	env := map[string]string{"REDIS_URL": b.redisURL, "JWT_HS256_SECRET": benchSecret, "LOG_LEVEL": "warn"}
	if b.write, err = startService(c.binDir, "write-api", env); err != nil {
		return err
	}
	if b.pubToken, err = devtoken.Publisher(benchSecret, "notifications", "loadgen", "notifications:publish notifications:broadcast", 4*time.Hour); err != nil {
		return err
	}
	for range c.pods {
		p, err := b.startPod("")
		if err != nil {
			return err
		}
		b.slots = append(b.slots, p)
	}
	pub := Target{URL: b.write.URL, Token: b.pubToken}
	snap := c.snapshot == "on"
	if c.snapshot == "auto" {
		snap = probeSnapshot(pub, b.slots[0].proc.URL)
	}
	progressDone(fmt.Sprintf("[fleet] %d streams on %d pods, %v of publishing, DRAIN_TIMEOUT %v, rollout %s, snapshot streams %v, %d files per process",
		c.streams, c.pods, c.duration, c.drain, c.rollout, snap, fileLimit()))

	sellers := topicsOwn("seller:", c.streams)
	var extra, fleetTopics []string
	if snap {
		every := max(1, int(math.Round(1/c.snapShare)))
		fleetTopics = topicsOwn("fleet:", max(1, c.streams/every/50))
		extra = make([]string, c.streams)
		for i := 0; i < c.streams; i += every {
			extra[i] = fleetTopics[(i/every)%len(fleetTopics)]
		}
		if err := prepublishState(pub, fleetTopics, c.snapKeys); err != nil {
			return err
		}
	}

	// Open every stream through the Service.
	rss0 := b.readRSS()
	if b.f, err = startWorkers(c.streams, c.perWorker); err != nil {
		return err
	}
	quota := c.podCap / b.f.Workers()
	progress(fmt.Sprintf("[fleet] opening %d streams from %d worker processes (at most %d per pod each)", c.streams, b.f.Workers(), quota))
	t0 := time.Now()
	retryMS := -1 // the server's retry field
	if c.retry >= 0 {
		retryMS = int(c.retry.Milliseconds())
	}
	open, err := b.f.OpenFleet(FleetOpen{Pods: b.endpoints(), Quota: quota, SnapKeys: int64(c.snapKeys), RetryMS: retryMS},
		benchSecret, sellers, extra, 100)
	if err != nil {
		return err
	}
	openSec := time.Since(t0).Seconds()
	time.Sleep(2 * time.Second)
	rss1 := b.readRSS()
	before := b.podCounts()
	progressDone(fmt.Sprintf("[fleet] %d streams open (%d failed) in %.1fs, connect p50 %.1fms p99 %.1fms, read-api RSS %.0f→%.0f MiB, per pod %v",
		open.Open, open.Failed, openSec, ms(open.Connect.Quantile(0.5)), ms(open.Connect.Quantile(0.99)), mib(rss0), mib(rss1), before))
	b.details["open"] = map[string]any{"streams": open.Open, "failed": open.Failed, "all_open_s": openSec,
		"connect_p50_ms": ms(open.Connect.Quantile(0.5)), "connect_p99_ms": ms(open.Connect.Quantile(0.99)),
		"read_rss_before_mib": mib(rss0), "read_rss_after_mib": mib(rss1), "per_pod": before, "worker_processes": b.f.Workers(), "quota_per_worker": quota}
	if c.profileDir != "" {
		b.profile(b.slots[0], "heap", "/debug/pprof/heap?gc=1")
	}

	// The seller workload, and the rollout a third of the way in.
	pubs := b.publishers(sellers, fleetTopics)
	results := make([]PubResult, len(pubs))
	var pwg sync.WaitGroup
	start := b.mark("start")
	for i, p := range pubs {
		pwg.Go(func() { results[i] = Publish(context.Background(), pub, p) })
	}
	ctx, stopSampler := context.WithCancel(context.Background())
	peak := make(chan int64, 1)
	go b.sample(ctx, peak)
	if c.profileDir != "" {
		go b.profile(b.slots[0], "cpu-steady", fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(5, int(c.rolloutAt*c.duration.Seconds())-10)))
	}
	time.Sleep(time.Until(start.at.Add(time.Duration(float64(c.duration) * c.rolloutAt))))
	rolloutStart := b.mark("rollout start")
	countsRolloutStart := b.podCounts()
	back, rerr := b.rollingRestart()
	rolloutEnd := b.mark("rollout end")
	if rerr != nil {
		fmt.Fprintf(os.Stderr, "loadgen fleet: rollout: %v\n", rerr)
	}
	time.Sleep(2 * time.Second)
	after := b.podCounts()
	pwg.Wait()
	b.waitQuiet()
	end := b.mark("end")
	stopSampler()
	peakRSS := <-peak

	targets := map[string]int64{}
	var accepted, pubErrs, missed, retried int64
	for i, p := range pubs {
		for j, t := range p.Topics {
			targets[t] = results[i].LastN[j]
		}
		accepted += results[i].Accepted
		pubErrs += results[i].Errors
		missed += results[i].Missed
		retried += results[i].Retried
	}
	ver, err := b.f.Verify(targets)
	if err != nil {
		return err
	}
	redisCPU := end.redisCPU - start.redisCPU
	wall := end.at.Sub(start.at).Seconds()
	deliveries := end.stats.Received - start.stats.Received
	readCPU := end.readCPU - start.readCPU
	b.details["run"] = map[string]any{"accepted": accepted, "publish_errors": pubErrs, "publish_missed": missed, "publish_retried": retried,
		"deliveries": deliveries, "read_cpu_s": readCPU, "redis_cpu_s": redisCPU, "wall_s": wall, "peak_read_rss_mib": mib(peakRSS),
		"per_pod_before": before, "per_pod_rollout_start": countsRolloutStart, "per_pod_after": after, "verify": ver.FleetReply,
		"unexpected_ends": ver.Unexpected, "reconnects": ver.Reconnects, "failed_attempts": failedAttempts(ver.Failures), "resets": ver.Resets}
	phases := map[string]any{}
	for _, ph := range []struct {
		name     string
		from, to phaseMark
	}{{"steady", start, rolloutStart}, {"rollout", rolloutStart, rolloutEnd}, {"after", rolloutEnd, end}} {
		phases[ph.name] = phaseFigures(ph.from, ph.to)
	}
	b.details["phases"] = phases
	b.details["pods"] = back
	b.details["config"] = map[string]any{"streams": c.streams, "pods": c.pods, "duration_s": c.duration.Seconds(), "drain_timeout_s": c.drain.Seconds(),
		"rate": c.rate * c.scale, "broadcast_every_s": c.bcastEvery.Seconds(), "snapshot_streams": snap, "rollout": c.rollout, "pod_cap": c.podCap, "scale": c.scale}

	b.table(open, openSec, rss1, peakRSS, before, after, back, ver, phases, deliveries, readCPU, redisCPU, wall, pubErrs, retried, snap, rerr)
	fmt.Printf("\nNotify fleet: %s, %d CPUs, scale %.3g, %d streams, %d pods, %.0fs of publishing\n", time.Now().UTC().Format(time.RFC3339), numCPU(), c.scale, c.streams, c.pods, wall)
	printTable(os.Stdout, b.rows)
	js, _ := json.MarshalIndent(map[string]any{"rows": b.rows, "details": b.details, "scale": c.scale}, "", "  ")
	if err := os.WriteFile(c.out, js, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\n", c.out)
	return nil
}

// checkFiles refuses a run that would need more open files than a process
// may hold.
func checkFiles(c fleetConfig) error {
	limit := fileLimit()
	if need := max(c.perWorker, c.podCap) + 200; limit > 0 && need > limit {
		return fmt.Errorf("fleet: a worker or pod needs %d open files, the limit is %d (ulimit -n; lower -per-worker or -pod-cap)", need, limit)
	}
	return nil
}

func fileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(r.Cur)
}

func (b *fleetBench) startPod(addr string) (*fleetPod, error) {
	c := b.cfg
	env := map[string]string{"REDIS_URL": b.redisURL, "JWT_HS256_SECRET": benchSecret, "LOG_LEVEL": "warn",
		"DRAIN_TIMEOUT": c.drain.String(), "MAX_CONNECTIONS_PER_SUBJECT": "20"}
	p := &fleetPod{id: len(b.pods())}
	if c.profileDir != "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p.pprof = "127.0.0.1:" + strconv.Itoa(port)
		env["PPROF_ADDR"] = p.pprof
	}
	if addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	proc, err := startServiceAt(c.readBin, addr, env)
	if err != nil {
		return nil, err
	}
	p.proc = proc
	b.podsMu.Lock()
	b.all = append(b.all, p)
	b.podsMu.Unlock()
	if err := proc.waitReady(); err != nil {
		return nil, err
	}
	return p, nil
}

// endpoints is the Service: every slot's pod.
func (b *fleetBench) endpoints() []Endpoint {
	var eps []Endpoint
	for _, p := range b.slots {
		eps = append(eps, Endpoint{ID: p.id, URL: p.proc.URL})
	}
	return eps
}

// PodBack is how one pod's streams came back after its SIGTERM.
type PodBack struct {
	Pod         int     `json:"pod"`
	Replacement int     `json:"replacement"`
	Streams     int64   `json:"streams_ended"`
	Back        int64   `json:"streams_back"`
	AllBackS    float64 `json:"all_back_after_sigterm_s"` // last stream re-established, from SIGTERM
	MaxGapS     float64 `json:"max_gap_s"`                // longest a stream was away
	ExitS       float64 `json:"exit_after_sigterm_s"`
	ExitOK      bool    `json:"exit_ok"`
}

// rollingRestart replaces every pod, one after another, as a Deployment
// rollout does, and waits after each until every stream it ended is back.
func (b *fleetBench) rollingRestart() ([]PodBack, error) {
	return rollout(b.cfg.rollout == "surge", len(b.slots), fleetOps{b})
}

// fleetOps carries out a rollout's steps on the bench's processes.
type fleetOps struct{ b *fleetBench }

func (o fleetOps) pod(slot int) int { return o.b.slots[slot].id }

func (o fleetOps) start(slot int, reuse bool) (int, error) {
	b := o.b
	addr := ""
	if reuse {
		addr = strings.TrimPrefix(b.slots[slot].proc.URL, "http://")
	}
	p, err := b.startPod(addr)
	if err != nil {
		return 0, err
	}
	b.slots[slot] = p
	return p.id, nil
}

func (o fleetOps) route(out int) error {
	b := o.b
	var eps []Endpoint
	for _, p := range b.slots {
		if p.id != out {
			eps = append(eps, Endpoint{ID: p.id, URL: p.proc.URL})
		}
	}
	_, err := b.f.SetPods(eps)
	return err
}

func (o fleetOps) terminate(id int) error {
	b := o.b
	p := b.pods()[id]
	if b.cfg.profileDir != "" && id == 0 {
		// The last slot's pod takes its share of every drain: profile it
		// during the first.
		go b.profile(b.slots[len(b.slots)-1], "cpu-rollout", fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(b.cfg.drain.Seconds())))
	}
	progress(fmt.Sprintf("[fleet] SIGTERM pod %d (%d streams)", p.id, int(metric(p.proc.URL, "notify_read_connections"))))
	p.termAt = time.Now()
	in, err := p.proc.Terminate(b.cfg.drain + 15*time.Second)
	p.exitIn, p.exitOK = in, err == nil
	return err
}

func (o fleetOps) waitBack(old, replacement int) PodBack {
	b := o.b
	p := b.pods()[old]
	deadline := p.termAt.Add(b.cfg.drain + time.Minute)
	var st PodStat
	for time.Now().Before(deadline) {
		r, err := b.f.Op("stats")
		if err != nil {
			break
		}
		st = r.PodStats[old]
		if st.Open == 0 && st.Back == st.Ended {
			break
		}
		// Every stats call costs each worker a snapshot of its
		// histograms: on a shared machine, taken from the pods.
		time.Sleep(time.Second)
	}
	pb := PodBack{Pod: old, Replacement: replacement, Streams: st.Ended, Back: st.Back, MaxGapS: float64(st.MaxGapUS) / 1e6,
		ExitS: p.exitIn.Seconds(), ExitOK: p.exitOK}
	if st.LastBackNS > 0 {
		pb.AllBackS = time.Unix(0, st.LastBackNS).Sub(p.termAt).Seconds()
	}
	progressDone(fmt.Sprintf("[fleet] pod %d → %d: exited %.1fs after SIGTERM (ok %v); %d/%d streams back, the last %.2fs after SIGTERM (longest away %.2fs)",
		old, replacement, pb.ExitS, pb.ExitOK, pb.Back, pb.Streams, pb.AllBackS, pb.MaxGapS))
	return pb
}

// probeSnapshot tells whether the server has keyed state: a keyed publish
// is accepted and a snapshot stream ends its snapshot with stream.synced.
func probeSnapshot(pub Target, readURL string) bool {
	pc, err := newPubConn(pub)
	if err != nil {
		return false
	}
	defer pc.close()
	status, err := pc.post("/v1/notifications", []byte(`{"topics":["fleet:probe"],"type":"lg","key":"probe","data":{}}`), "")
	if err != nil || status != http.StatusAccepted {
		return false
	}
	tok, err := devtoken.Subscriber(benchSecret, "notifications", "lg-probe", []string{"fleet:probe"}, time.Minute)
	if err != nil {
		return false
	}
	req, _ := http.NewRequest(http.MethodGet, readURL+"/v1/stream?topic=fleet:probe&snapshot=true", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	var got []byte
	for !strings.Contains(string(got), "event: stream.synced") {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil || len(got) > 1<<16 {
			return false
		}
	}
	return true
}

// prepublishState gives each topic keys keyed notifications (n = 1..keys),
// so that a snapshot has every key to send.
func prepublishState(pub Target, topics []string, keys int) error {
	pc, err := newPubConn(pub)
	if err != nil {
		return err
	}
	defer pc.close()
	cfg := PubConfig{Topics: topics, Seq: true, Keys: keys, Batch: keys}
	for i := range topics {
		batch := make([]job, keys)
		for k := range batch {
			batch[k] = job{topic: i, n: int64(k + 1)}
		}
		if _, err := post(pc, pub, cfg, batch, ""); err != nil {
			return fmt.Errorf("fleet: state of %s: %w", topics[i], err)
		}
	}
	return nil
}

// pubRetry is how long a publish whose outcome is unknown (write-api's
// 503 when Redis does not answer in time) is retried with its
// Idempotency-Key, as the contract asks of publishers.
const pubRetry = 30 * time.Second

// publishers is the seller workload: targeted notifications spread over
// the sellers (some single, some in batches), a broadcast now and then,
// and keyed updates of the fleet topics.
func (b *fleetBench) publishers(sellers, fleetTopics []string) []PubConfig {
	c := b.cfg
	var single, batched []string
	for i, t := range sellers {
		if float64(i%100) < c.batchShare*100 {
			batched = append(batched, t)
		} else {
			single = append(single, t)
		}
	}
	rate := c.rate * c.scale
	var ps []PubConfig
	if len(single) > 0 {
		ps = append(ps, PubConfig{Topics: single, Rate: rate * float64(len(single)) / float64(len(sellers)), Duration: c.duration, Conc: 8, Seq: true, Retry: pubRetry})
	}
	if len(batched) > 0 {
		ps = append(ps, PubConfig{Topics: batched, Rate: rate * float64(len(batched)) / float64(len(sellers)), Duration: c.duration,
			Batch: 100, Linger: 100 * time.Millisecond, Conc: 2, Seq: true, Retry: pubRetry})
	}
	ps = append(ps, PubConfig{Topics: []string{"broadcast"}, Rate: 1 / c.bcastEvery.Seconds(), Duration: c.duration, Conc: 1, Seq: true, Retry: pubRetry})
	if len(fleetTopics) > 0 {
		start := make([]int64, len(fleetTopics))
		for i := range start {
			start[i] = int64(c.snapKeys)
		}
		ps = append(ps, PubConfig{Topics: fleetTopics, Rate: max(1, 20*c.scale), Duration: c.duration, Conc: 1, Seq: true,
			SeqStart: start, Keys: c.snapKeys, Retry: pubRetry})
	}
	return ps
}

// phaseMark is the state of everything measured at one moment.
type phaseMark struct {
	name     string
	at       time.Time
	stats    Reply
	readCPU  float64
	redisCPU float64
}

func (b *fleetBench) mark(name string) phaseMark {
	m := phaseMark{name: name, at: time.Now(), redisCPU: b.redis.CPU(), readCPU: b.readCPU()}
	if r, err := b.f.Op("stats"); err == nil {
		m.stats = r
	}
	progressDone(fmt.Sprintf("[fleet] %s: %d streams open, %d received", name, m.stats.Open, m.stats.Received))
	return m
}

// phaseFigures is publish→receive latency, deliveries and CPU between two marks.
func phaseFigures(from, to phaseMark) map[string]any {
	t := to.stats.Lat.Sub(from.stats.Lat)
	bc := to.stats.LatB.Sub(from.stats.LatB)
	all := HistSnap{}
	all.Merge(t)
	all.Merge(bc)
	wall := to.at.Sub(from.at).Seconds()
	d := to.stats.Received - from.stats.Received
	f := map[string]any{"seconds": wall, "deliveries": d, "read_cpu_s": to.readCPU - from.readCPU, "redis_cpu_s": to.redisCPU - from.redisCPU}
	for name, h := range map[string]HistSnap{"all": all, "targeted": t, "broadcast": bc} {
		f[name] = map[string]float64{"n": float64(h.Count()), "p50_ms": ms(h.Quantile(0.5)), "p99_ms": ms(h.Quantile(0.99)), "p999_ms": ms(h.Quantile(0.999)), "max_ms": ms(h.Quantile(1))}
	}
	if d > 0 {
		f["read_cpu_s_per_100k"] = (to.readCPU - from.readCPU) / float64(d) * 1e5
	}
	return f
}

// readCPU is the CPU-seconds of every read-api process so far, exited
// ones included.
func (b *fleetBench) readCPU() float64 {
	var s float64
	for _, p := range b.pods() {
		s += p.proc.CPU()
	}
	return s
}

// pods is every read-api process started so far.
func (b *fleetBench) pods() []*fleetPod {
	b.podsMu.Lock()
	defer b.podsMu.Unlock()
	return slices.Clone(b.all)
}

func (b *fleetBench) readRSS() int64 {
	var s int64
	for _, p := range b.pods() {
		s += p.proc.RSS()
	}
	return s
}

// podCounts is each serving pod's open streams (its own gauge), by pod ID.
func (b *fleetBench) podCounts() map[string]int {
	m := map[string]int{}
	for _, p := range b.slots {
		m[strconv.Itoa(p.id)] = int(metric(p.proc.URL, "notify_read_connections"))
	}
	return m
}

// sample prints progress and tracks the read-apis' peak RSS until ctx ends.
func (b *fleetBench) sample(ctx context.Context, peak chan<- int64) {
	var top int64
	defer func() { peak <- top }()
	every := 5 * time.Second
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start, last := time.Now(), time.Now()
	var prev Reply
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		top = max(top, b.readRSS())
		if time.Since(last) < every {
			continue
		}
		last = time.Now()
		r, err := b.f.Op("stats")
		if err != nil {
			continue
		}
		t, bc := r.Lat.Sub(prev.Lat), r.LatB.Sub(prev.LatB)
		progress(fmt.Sprintf("[fleet] %4.0fs  streams %d  received %d (%.0f/s)  p99 %.0fms targeted, %.0fms broadcast  gaps %d dups %d  reconnects %d  read-api RSS %.0f MiB",
			time.Since(start).Seconds(), r.Open, r.Received, float64(r.Received-prev.Received)/every.Seconds(),
			ms(t.Quantile(0.99)), ms(bc.Quantile(0.99)), r.Gaps, r.Dups, r.Reconnects, mib(b.readRSS())))
		prev = r
	}
}

// waitQuiet waits until deliveries stop (everything published arrived).
func (b *fleetBench) waitQuiet() {
	last, still := int64(-1), time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		r, err := b.f.Op("stats")
		if err != nil {
			return
		}
		if r.Received != last {
			last, still = r.Received, time.Now()
		} else if time.Since(still) > 3*time.Second {
			return
		}
	}
}

// profile saves one pprof endpoint of p to the profile directory.
func (b *fleetBench) profile(p *fleetPod, name, path string) {
	if p.pprof == "" {
		return
	}
	resp, err := http.Get("http://" + p.pprof + path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen fleet: profile %s: %v\n", name, err)
		return
	}
	defer resp.Body.Close()
	file := filepath.Join(b.cfg.profileDir, fmt.Sprintf("read-api-%s-pod%d.pb.gz", name, p.id))
	out, err := os.Create(file)
	if err == nil {
		_, err = io.Copy(out, resp.Body)
		_ = out.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen fleet: profile %s: %v\n", name, err)
		return
	}
	progressDone("[fleet] profile written: " + file)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
