package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
)

const benchSecret = "bench-secret-bench-secret-bench-secret-0123"

// Bench runs the standard scenarios on a stack it starts itself.
type Bench struct {
	binDir   string
	scale    float64
	redis    *Proc
	redisURL string
	write    *Proc
	pubToken string
	rows     []Row
	results  map[string]any
	only     map[string]bool
	readEnv  map[string]string // for every read-api pod
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	binDir := fs.String("bin", "bin", "directory holding write-api and read-api")
	scale := fs.Float64("scale", 1, "multiply stream counts and rates (0.1 for a smoke run)")
	out := fs.String("json", "bench-results.json", "where to write the JSON results")
	only := fs.String("only", "", "comma-separated scenarios to run (idle,broadcast,targeted,write,storm,routing,snapshot)")
	readEnv := fs.String("read-env", "", "comma-separated KEY=VALUE settings for every read-api pod, for A/B runs (e.g. GOGC=200)")
	_ = fs.Parse(args)
	b := &Bench{binDir: *binDir, scale: *scale, results: map[string]any{}, only: map[string]bool{}, readEnv: map[string]string{"MAX_CONNECTIONS_PER_SUBJECT": "20"}}
	for _, kv := range splitComma(*readEnv) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-read-env: %q is not KEY=VALUE", kv)
		}
		b.readEnv[k] = v
	}
	for _, s := range splitComma(*only) {
		b.only[s] = true
	}
	dir, err := os.MkdirTemp("", "notify-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if b.redis, b.redisURL, err = startRedis(dir); err != nil {
		return err
	}
	defer b.redis.Stop()
	if b.write, err = startService(b.binDir, "write-api", b.env(nil)); err != nil {
		return err
	}
	defer b.write.Stop()
	if b.pubToken, err = devtoken.Publisher(benchSecret, "notifications", "loadgen", "notifications:publish notifications:broadcast", 4*time.Hour); err != nil {
		return err
	}
	started := time.Now()
	scenarios := []struct {
		name string
		run  func() error
	}{
		{"idle", b.idle}, {"broadcast", b.broadcast}, {"targeted", b.targeted},
		{"write", b.writeThroughput}, {"storm", b.storm}, {"routing", b.routing},
		{"snapshot", b.snapshot},
	}
	for _, s := range scenarios {
		if len(b.only) > 0 && !b.only[s.name] {
			continue
		}
		t0 := time.Now()
		if err := s.run(); err != nil {
			fmt.Fprintf(os.Stderr, "scenario %s failed: %v\n", s.name, err)
			b.rows = append(b.rows, Row{Scenario: s.name, Metric: "FAILED", Note: err.Error()})
		}
		fmt.Fprintf(os.Stderr, "-- %s took %.0fs\n", s.name, time.Since(t0).Seconds())
	}
	fmt.Printf("\nNotify bench: %s, %d CPUs, scale %.2g, %.0fs\n", time.Now().Format(time.RFC3339), numCPU(), b.scale, time.Since(started).Seconds())
	printTable(os.Stdout, b.rows)
	js, _ := json.MarshalIndent(map[string]any{"rows": b.rows, "details": b.results, "scale": b.scale}, "", "  ")
	if err := os.WriteFile(*out, js, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\n", *out)
	return nil
}

func (b *Bench) env(extra map[string]string) map[string]string {
	e := map[string]string{"REDIS_URL": b.redisURL, "JWT_HS256_SECRET": benchSecret, "LOG_LEVEL": "warn"}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

func (b *Bench) n(v int) int { return max(1, int(float64(v)*b.scale)) }

// pair starts a fresh read-api (pods of them) and a fresh baseline, so
// every scenario measures processes that hold nothing from earlier ones.
func (b *Bench) pair(pods int) (notify, base System, stop func(), err error) {
	var procs []*Proc
	stop = func() {
		for _, p := range procs {
			p.Stop()
		}
	}
	var urls []string
	for range pods {
		p, err := startService(b.binDir, "read-api", b.env(b.readEnv))
		if err != nil {
			stop()
			return notify, base, nil, err
		}
		procs = append(procs, p)
		urls = append(urls, p.URL)
	}
	bp, err := startBaseline()
	if err != nil {
		stop()
		return notify, base, nil, err
	}
	procs = append(procs, bp)
	time.Sleep(500 * time.Millisecond) // let the runtimes settle before RSS is read
	notify = System{Name: "notify", StreamURLs: urls, Pub: Target{URL: b.write.URL, Token: b.pubToken}, ServerPID: procs[0].PID(), Secret: benchSecret}
	base = System{Name: "baseline", Baseline: true, StreamURLs: []string{bp.URL}, Pub: Target{URL: bp.URL, Baseline: true}, ServerPID: bp.PID()}
	return notify, base, stop, nil
}

func (b *Bench) add(r Row) {
	if r.Baseline != nil && *r.Baseline != 0 {
		r.Ratio = fptr(r.Notify / *r.Baseline)
	}
	b.rows = append(b.rows, r)
}

func topicsOwn(prefix string, n int) []string {
	t := make([]string, n)
	for i := range t {
		t[i] = prefix + strconv.Itoa(i)
	}
	return t
}

func repeat(topic string, n int) []string {
	t := make([]string, n)
	for i := range t {
		t[i] = topic
	}
	return t
}

// idle: streams that receive nothing; server RSS growth per stream.
func (b *Bench) idle() error {
	n := b.n(15000)
	notify, base, stop, err := b.pair(1)
	if err != nil {
		return err
	}
	defer stop()
	res := map[string]OpenResult{}
	for _, sys := range []System{notify, base} {
		f, or, err := openFleet(sys, topicsOwn("user:", n), 100, 3*time.Second)
		if err != nil {
			return err
		}
		f.Close()
		res[sys.Name] = or
	}
	b.results["idle"] = res
	sc := fmt.Sprintf("idle %d streams", n)
	b.add(Row{Scenario: sc, Metric: "RSS per stream", Unit: "KiB", Notify: res["notify"].RSSPerKiB, Baseline: fptr(res["baseline"].RSSPerKiB),
		Target: "≤ 10 KiB", Met: bptr(res["notify"].RSSPerKiB <= 10)})
	b.add(Row{Scenario: sc, Metric: "connect p99", Unit: "ms", Notify: res["notify"].ConnectP99ms, Baseline: fptr(res["baseline"].ConnectP99ms)})
	b.add(Row{Scenario: sc, Metric: "streams open", Unit: "n", Notify: float64(res["notify"].Streams), Baseline: fptr(float64(res["baseline"].Streams))})
	return nil
}

// broadcast: 10,000 streams on broadcast at 5 msg/s, then saturation steps.
func (b *Bench) broadcast() error {
	n := b.n(10000)
	notify, base, stop, err := b.pair(1)
	if err != nil {
		return err
	}
	defer stop()
	steady := map[string]LoadResult{}
	sat := map[string]float64{}
	satP99 := map[string]float64{}
	steps := map[string][]LoadResult{}
	for _, sys := range []System{notify, base} {
		f, _, err := openFleet(sys, repeat("broadcast", n), 100, time.Second)
		if err != nil {
			return err
		}
		cfg := PubConfig{Topics: []string{"broadcast"}, Rate: 5, Duration: 10 * time.Second, Conc: 1, Seq: true}
		lr, err := runLoad(sys.Name+" broadcast 5/s", sys, f, cfg, []int{n})
		if err != nil {
			f.Close()
			return err
		}
		steady[sys.Name] = lr
		seq := lr.LastN
		for _, rate := range []float64{10, 20, 30, 40, 60, 80, 100, 120} {
			cfg := PubConfig{Topics: []string{"broadcast"}, Rate: rate, Duration: 4 * time.Second, Conc: 1, Seq: true, SeqStart: seq}
			lr, err := runLoad(fmt.Sprintf("%s saturation %.0f/s", sys.Name, rate), sys, f, cfg, []int{n})
			seq = lr.LastN
			if err != nil {
				f.Close()
				return err
			}
			steps[sys.Name] = append(steps[sys.Name], lr)
			if lr.P99ms >= 1000 || lr.DeliveredPct < 99 {
				if sat[sys.Name] == 0 { // no step passed: report the first, failing
					satP99[sys.Name] = lr.P99ms
				}
				break
			}
			if lr.DeliveriesPerSec > sat[sys.Name] {
				sat[sys.Name], satP99[sys.Name] = lr.DeliveriesPerSec, lr.P99ms
			}
		}
		f.Close()
	}
	fl, err := b.floorBroadcast(n)
	if err != nil {
		return err
	}
	b.results["broadcast"] = map[string]any{"steady": steady, "saturation_steps": steps, "floor": fl}
	sc := fmt.Sprintf("broadcast %d streams 5/s", n)
	nb, bb := steady["notify"], steady["baseline"]
	b.add(Row{Scenario: sc, Metric: "p99 publish→receive", Unit: "ms", Notify: nb.P99ms, Baseline: fptr(bb.P99ms), Target: "≤ 50 ms", Met: bptr(nb.P99ms <= 50)})
	b.add(Row{Scenario: sc, Metric: "p50", Unit: "ms", Notify: nb.P50ms, Baseline: fptr(bb.P50ms)})
	b.add(Row{Scenario: sc, Metric: "p99.9", Unit: "ms", Notify: nb.P999ms, Baseline: fptr(bb.P999ms)})
	b.add(Row{Scenario: sc, Metric: "server CPU per 100k deliv.", Unit: "CPU-s", Notify: nb.CPUPer100k, Baseline: fptr(bb.CPUPer100k), Target: "≤ 0.5 CPU-s", Met: bptr(nb.CPUPer100k <= 0.5)})
	b.add(Row{Scenario: sc, Metric: "delivered", Unit: "%", Notify: nb.DeliveredPct, Baseline: fptr(bb.DeliveredPct), Target: "100 %", Met: bptr(nb.DeliveredPct >= 100 && nb.Gaps == 0)})
	floorNote := fmt.Sprintf("baseline column: the floor (loadgen floor: one write(2) per delivery, nothing else), %.0f%% delivered", fl.DeliveredPct)
	b.add(Row{Scenario: sc, Metric: "p99 vs write(2) floor", Unit: "ms", Notify: nb.P99ms, Baseline: fptr(fl.P99ms), Note: floorNote})
	b.add(Row{Scenario: sc, Metric: "CPU per 100k vs write(2) floor", Unit: "CPU-s", Notify: nb.CPUPer100k, Baseline: fptr(fl.CPUPer100k), Note: floorNote})
	sc = fmt.Sprintf("broadcast saturation %d", n)
	b.add(Row{Scenario: sc, Metric: "deliveries/s with p99<1s", Unit: "1/s", Notify: sat["notify"], Baseline: fptr(sat["baseline"]),
		Target: "≥ 200,000/s", Met: bptr(sat["notify"] >= 200000*b.scale),
		Note: fmt.Sprintf("p99 %.0f ms at the last passing step (first step if none passed); steps in JSON; loadgen shares the 2 cores", satP99["notify"])})
	return nil
}

// floorBroadcast runs the steady broadcast against the floor server: what
// one write(2) per delivery costs here, and how late the last of a
// message's writes lands, with nothing else done.
func (b *Bench) floorBroadcast(n int) (LoadResult, error) {
	fp, err := startFloor()
	if err != nil {
		return LoadResult{}, err
	}
	defer fp.Stop()
	sys := System{Name: "floor", Baseline: true, StreamURLs: []string{fp.URL}, Pub: Target{URL: fp.URL, Baseline: true}, ServerPID: fp.PID()}
	f, _, err := openFleet(sys, repeat("broadcast", n), 100, time.Second)
	if err != nil {
		return LoadResult{}, err
	}
	defer f.Close()
	return runLoad("floor broadcast 5/s", sys, f, PubConfig{Topics: []string{"broadcast"}, Rate: 5, Duration: 10 * time.Second, Conc: 1, Seq: true}, []int{n})
}

// targeted: every stream on its own topic, 2,000 msg/s spread over them.
func (b *Bench) targeted() error {
	n := b.n(10000)
	notify, base, stop, err := b.pair(1)
	if err != nil {
		return err
	}
	defer stop()
	topics := topicsOwn("device:", n)
	subs := make([]int, n)
	for i := range subs {
		subs[i] = 1
	}
	res := map[string]LoadResult{}
	for _, sys := range []System{notify, base} {
		f, _, err := openFleet(sys, topics, 100, time.Second)
		if err != nil {
			return err
		}
		cfg := PubConfig{Topics: topics, Rate: float64(b.n(2000)), Duration: 10 * time.Second, Conc: 32, Seq: true}
		lr, err := runLoad(sys.Name+" targeted", sys, f, cfg, subs)
		f.Close()
		if err != nil {
			return err
		}
		res[sys.Name] = lr
	}
	b.results["targeted"] = res
	sc := fmt.Sprintf("targeted %d topics %d/s", n, b.n(2000))
	nr, br := res["notify"], res["baseline"]
	b.add(Row{Scenario: sc, Metric: "p99 publish→receive", Unit: "ms", Notify: nr.P99ms, Baseline: fptr(br.P99ms), Target: "≤ 5 ms", Met: bptr(nr.P99ms <= 5)})
	b.add(Row{Scenario: sc, Metric: "p50", Unit: "ms", Notify: nr.P50ms, Baseline: fptr(br.P50ms)})
	b.add(Row{Scenario: sc, Metric: "p99.9", Unit: "ms", Notify: nr.P999ms, Baseline: fptr(br.P999ms)})
	b.add(Row{Scenario: sc, Metric: "delivered", Unit: "%", Notify: nr.DeliveredPct, Baseline: fptr(br.DeliveredPct), Target: "100 %", Met: bptr(nr.DeliveredPct >= 100 && nr.Gaps == 0)})
	return nil
}

// writeThroughput: write-api flat out, single requests and batches.
func (b *Bench) writeThroughput() error {
	bp, err := startBaseline()
	if err != nil {
		return err
	}
	defer bp.Stop()
	topics := topicsOwn("order:", 1000)
	type mode struct {
		name   string
		batch  int
		conc   int
		target float64
	}
	res := map[string]map[string]PubResult{}
	for _, m := range []mode{{"single", 1, 64, 20000}, {"batch of 100", 100, 8, 45000}} {
		res[m.name] = map[string]PubResult{}
		for _, t := range []Target{{URL: b.write.URL, Token: b.pubToken}, {URL: bp.URL, Baseline: true}} {
			name := map[bool]string{false: "notify", true: "baseline"}[t.Baseline]
			progress(fmt.Sprintf("[%s write %s] publishing flat out for 5s", name, m.name))
			pid := b.write.PID()
			if t.Baseline {
				pid = bp.PID()
			}
			cpu0 := cpuSeconds(pid)
			pr := Publish(context.Background(), t, PubConfig{Topics: topics, Duration: 5 * time.Second, Batch: m.batch, Conc: m.conc})
			cpu := cpuSeconds(pid) - cpu0
			progressDone(fmt.Sprintf("[%s write %s] %.0f notifications/s accepted (%d errors), server %.2f CPU-s", name, m.name, float64(pr.Accepted)/pr.Elapsed.Seconds(), pr.Errors, cpu))
			pr.LastN = nil
			res[m.name][name] = pr
		}
		nr, br := res[m.name]["notify"], res[m.name]["baseline"]
		nv, bv := float64(nr.Accepted)/nr.Elapsed.Seconds(), float64(br.Accepted)/br.Elapsed.Seconds()
		b.add(Row{Scenario: "write-api " + m.name, Metric: "accepted notifications/s", Unit: "1/s", Notify: nv, Baseline: fptr(bv),
			Target: fmt.Sprintf("≥ %.0f/s", m.target), Met: bptr(nv >= m.target), Note: "baseline: in-memory, no auth, no Redis"})
	}
	b.results["write"] = res
	return nil
}

// storm: every stream drops at once and resumes by cursor while
// publishing goes on; nothing may be lost.
func (b *Bench) storm() error {
	n := b.n(15000)
	nt := 1000
	notify, _, stop, err := b.pair(1)
	if err != nil {
		return err
	}
	defer stop()
	topics := topicsOwn("team:", nt)
	streamTopics := make([]string, n)
	for i := range streamTopics {
		streamTopics[i] = topics[i%nt]
	}
	f, or, err := openFleet(notify, streamTopics, 200, time.Second)
	if err != nil {
		return err
	}
	defer f.Close()
	rate := float64(b.n(2000))
	pa := Publish(context.Background(), notify.Pub, PubConfig{Topics: topics, Rate: rate, Duration: 2 * time.Second, Conc: 16, Seq: true})
	time.Sleep(300 * time.Millisecond)
	progress(fmt.Sprintf("[storm] dropping %d streams", n))
	if _, err := f.Op("drop"); err != nil {
		return err
	}
	// While the streams are away, events keep coming: they must be replayed.
	pb := Publish(context.Background(), notify.Pub, PubConfig{Topics: topics, Rate: rate, Duration: time.Second, Conc: 16, Seq: true, SeqStart: pa.LastN})
	targets := map[string]int64{}
	for i, t := range topics {
		targets[t] = pb.LastN[i]
	}
	// Live traffic continues during the storm.
	liveDone := make(chan PubResult, 1)
	go func() {
		liveDone <- Publish(context.Background(), notify.Pub, PubConfig{Topics: topics, Rate: rate, Duration: 3 * time.Second, Conc: 16, Seq: true, SeqStart: pb.LastN})
	}()
	progress(fmt.Sprintf("[storm] %d streams resuming by cursor at once", n))
	r, err := f.Resume(targets, 1000, 1)
	if err != nil {
		return err
	}
	pc := <-liveDone
	time.Sleep(time.Second)
	final, err := f.Op("stats")
	if err != nil {
		return err
	}
	established, caught := float64(r.EstablishUS)/1e6, float64(r.CaughtUpUS)/1e6
	lost := final.Gaps
	res := map[string]any{"open": or, "reestablished_s": established, "caught_up_s": caught, "not_caught_up": r.NotCaught,
		"resume_connect_p50_ms": ms(r.Connect.Quantile(0.5)), "resume_connect_p99_ms": ms(r.Connect.Quantile(0.99)), "resume_connect_max_ms": ms(r.Connect.Quantile(1)),
		"resume_failed": r.Failed, "gaps": final.Gaps, "dups": final.Dups, "resets": final.Resets, "open_after": final.Open,
		"published_before": pa.Accepted, "published_while_down": pb.Accepted, "published_during": pc.Accepted}
	b.results["storm"] = res
	progressDone(fmt.Sprintf("[storm] re-established in %.2fs, caught up in %.2fs, not caught up %d, failed %d, gaps %d, dups %d, resets %d, %d open",
		established, caught, r.NotCaught, r.Failed, final.Gaps, final.Dups, final.Resets, final.Open))
	sc := fmt.Sprintf("reconnect storm %d", n)
	ok := r.NotCaught == 0 && r.Failed == 0
	b.add(Row{Scenario: sc, Metric: "all re-established", Unit: "s", Notify: established, Target: "", Note: fmt.Sprintf("%d failed", r.Failed)})
	b.add(Row{Scenario: sc, Metric: "all caught up", Unit: "s", Notify: caught, Target: "≤ 3 s", Met: bptr(ok && caught <= 3)})
	b.add(Row{Scenario: sc, Metric: "events lost (gaps)", Unit: "n", Notify: float64(lost), Target: "0", Met: bptr(lost == 0 && final.Dups == 0 && ok),
		Note: fmt.Sprintf("dups %d, resets %d; baseline has no resume", final.Dups, final.Resets)})
	return nil
}

// routing: four pods, streams spread uniformly; each pod's messages read
// from Redis against a subscriber that receives everything (the usual
// design, where every pod gets every message).
func (b *Bench) routing() error {
	const pods = 4
	n, nt := b.n(8000), b.n(8000)
	notify, _, stop, err := b.pair(pods)
	if err != nil {
		return err
	}
	defer stop()
	topics := topicsOwn("seller:", nt)
	rng := rand.New(rand.NewPCG(4, 4))
	subs := make([]int, nt)
	streamTopics := make([]string, n)
	for i := range streamTopics {
		k := rng.IntN(nt)
		streamTopics[i], subs[k] = topics[k], subs[k]+1
	}
	f, _, err := openFleet(notify, streamTopics, 100, time.Second)
	if err != nil {
		return err
	}
	defer f.Close()

	opt, _ := redis.ParseURL(b.redisURL)
	rc := redis.NewClient(opt)
	defer rc.Close()
	ps := rc.PSubscribe(context.Background(), redisbus.Keys{Prefix: "notify:"}.ChannelPattern())
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		return err
	}
	var everything atomic.Int64
	go func() {
		for range ps.Channel(redis.WithChannelSize(100000)) {
			everything.Add(1)
		}
	}()
	before := make([]float64, pods)
	for i, u := range notify.StreamURLs {
		before[i] = metric(u, "notify_read_bus_messages_total")
	}
	lr, err := runLoad("routing 4 pods", notify, f, PubConfig{Topics: topics, Rate: float64(b.n(2000)), Duration: 5 * time.Second, Conc: 32, Seq: true}, subs)
	if err != nil {
		return err
	}
	all := float64(everything.Load())
	per := make([]float64, pods)
	sc := fmt.Sprintf("routing 4 pods, %d streams/%d topics", n, nt)
	for i, u := range notify.StreamURLs {
		per[i] = metric(u, "notify_read_bus_messages_total") - before[i]
		b.add(Row{Scenario: sc, Metric: fmt.Sprintf("pod %d msgs from Redis", i+1), Unit: "n", Notify: per[i], Baseline: fptr(all),
			Note: fmt.Sprintf("topics held %.0f", metric(u, "notify_read_topics_subscribed"))})
	}
	b.results["routing"] = map[string]any{"per_pod": per, "receive_everything": all, "load": lr}
	b.add(Row{Scenario: sc, Metric: "delivered", Unit: "%", Notify: lr.DeliveredPct, Target: "100 %", Met: bptr(lr.DeliveredPct >= 100 && lr.Gaps == 0),
		Note: "baseline column: messages a receive-everything pod (PSUBSCRIBE to every topic channel) reads"})
	return nil
}

func numCPU() int { return runtimeNumCPU() }

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
