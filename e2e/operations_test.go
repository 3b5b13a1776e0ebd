package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/publisher"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// TestOperationsView runs a real Prometheus (Debian's prometheus binary)
// scraping a real stack (redis-server, write-api, two read-api pods) under
// light load that includes a slow client and a reset, with
// deploy/prometheus/alerts.yaml loaded. Then every panel query of
// deploy/grafana/notify.json and every alert expression is evaluated
// through Prometheus's HTTP API:
//   - every query runs without error, and every metric it names has series;
//   - every panel query returns series;
//   - every alert rule is evaluated by Prometheus with health "ok", and its
//     expression with the threshold comparisons removed (the series the
//     alert compares, empty by design while healthy) returns series.
func TestOperationsView(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found in PATH: this test needs Debian's prometheus package (apt-get install -y prometheus)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(t)
	w, r1, r2 := s.StartWrite(nil), s.StartRead(nil), s.StartRead(nil)
	prom := startPrometheus(t, promBin, filepath.Join(root, "deploy", "prometheus", "alerts.yaml"),
		map[string][]*stack.Proc{"notify-write-api": {w}, "notify-read-api": {r1, r2}})

	ctx, cancel := context.WithCancel(t.Context())
	var load sync.WaitGroup
	t.Cleanup(func() { cancel(); load.Wait() })
	makeTraffic(t, ctx, &load, s, w, r1, r2)

	testwait.Until(t, 60*time.Second, "Prometheus holds 15 scrapes of every target", func() bool {
		res, err := prom.query(`count_over_time(up[1m]) >= 15`)
		return err == nil && len(res) == 3
	})
	testwait.Until(t, 30*time.Second, "Prometheus evaluated every alert rule", func() bool {
		rules, err := prom.rules()
		if err != nil || len(rules) == 0 {
			return false
		}
		for _, r := range rules {
			if r.Health == "unknown" {
				return false
			}
		}
		return true
	})

	rules, err := prom.rules()
	if err != nil {
		t.Fatal(err)
	}
	alertFile, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(alertFile), "- alert: "); len(rules) != want {
		t.Errorf("Prometheus loaded %d alert rules, alerts.yaml holds %d", len(rules), want)
	}
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("alert %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
		prom.check(t, "alert "+r.Name, r.Query, false)
		prom.check(t, "alert "+r.Name+" without thresholds", withoutThresholds(r.Query), true)
	}

	for _, p := range dashboardQueries(t, filepath.Join(root, "deploy", "grafana", "notify.json")) {
		prom.check(t, "panel "+p.title, p.expr, true)
	}
}

// makeTraffic opens streams on both pods, publishes to them until ctx
// ends, resumes one stream exactly and one from an unreadable cursor, and
// makes one client too slow, so that every series the views use exists
// and moves.
func makeTraffic(t *testing.T, ctx context.Context, load *sync.WaitGroup, s *stack.Stack, w, r1, r2 *stack.Proc) {
	t.Helper()
	tok := s.SubscriberToken("ops", "seller:ops", "seller:slow")
	a := open(t, r1, tok, "?topic=seller:ops")
	open(t, r2, tok, "?topic=seller:ops")
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{"seller:ops"}, Type: "tick", Data: 0})
	if err != nil {
		t.Fatal(err)
	}
	cursor := expectCursor(t, a, res.ID, "seller:ops")
	open(t, r2, tok, "?topic=seller:ops&lastEventId="+url.QueryEscape(cursor)) // exact
	open(t, r1, tok, "?topic=seller:ops&lastEventId=garbage")                  // stream.reset
	// A stream that comes and goes: closed as client_gone.
	open(t, r2, tok, "?topic=seller:ops").Close()

	makeSlowClient(t, ctx, r1, tok, pub)

	load.Go(func() { // light load: 10 publishes/s, a broadcast every second, bounded
		for i := 1; i <= 3000 && ctx.Err() == nil; i++ {
			topics := []string{"seller:ops"}
			if i%10 == 0 {
				topics = []string{"broadcast"}
			}
			if _, err := pub.Publish(ctx, publisher.Notification{Topics: topics, Type: "tick", Data: i}); err != nil && ctx.Err() == nil {
				t.Errorf("publish: %v", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// makeSlowClient opens a stream that reads nothing and floods its topic
// until the pod closes it as slow.
func makeSlowClient(t *testing.T, ctx context.Context, r *stack.Proc, tok string, pub *publisher.Client) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/stream?topic=seller:slow&access_token=%s HTTP/1.1\r\nHost: x\r\n\r\n", tok)
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(status, "200") {
		t.Fatalf("slow stream: %q %v", status, err)
	}
	blob := strings.Repeat("x", 65000)
	batch := make([]publisher.Notification, 15)
	for i := range batch {
		batch[i] = publisher.Notification{Topics: []string{"seller:slow"}, Type: "blob", Data: blob}
	}
	closed := func() bool { return metric(t, r, `notify_read_streams_closed_total{reason="slow"}`) > 0 }
	for sent := 0; sent < 800 && !closed(); sent += len(batch) { // 50 MB at most: far past the backlog limit and every socket buffer
		if _, err := pub.PublishBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// Past the backlog limit, or once a write waited WriteTimeout (10 s).
	testwait.Until(t, 30*time.Second, "the slow client closed as slow", closed)
}

// thresholds are comparisons with a number: what turns an alert's series
// into an empty result while all is well.
var thresholds = regexp.MustCompile(`\s*(==|!=|>=|<=|>|<)\s*[0-9.]+(e[+-]?[0-9]+)?`)

func withoutThresholds(expr string) string { return thresholds.ReplaceAllString(expr, "") }

var metricName = regexp.MustCompile(`\b(?:notify|process|go)_[a-zA-Z0-9_]+`)

type panelQuery struct{ title, expr string }

// dashboardQueries are the dashboard's panel queries with Grafana's
// variables replaced as Grafana would: a rate window of 15 s (15
// scrapes here), every job.
func dashboardQueries(t *testing.T, path string) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "15s", "$job", ".*")
	var out []panelQuery
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			out = append(out, panelQuery{p.Title, vars.Replace(q.Expr)})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

type promServer struct{ url string }

// startPrometheus runs prometheus on a free loopback port with a 1 s
// scrape and evaluation interval, the rule file, and one job per name.
func startPrometheus(t *testing.T, bin, rules string, jobs map[string][]*stack.Proc) *promServer {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %q\nscrape_configs:\n", rules)
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    static_configs:\n      - targets:\n", job)
		for _, p := range jobs[job] {
			fmt.Fprintf(&cfg, "          - %q\n", strings.TrimPrefix(p.URL, "http://"))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logs, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &promServer{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("prometheus exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check evaluates expr and every metric name in it; wantSeries requires
// expr itself to return at least one series.
func (p *promServer) check(t *testing.T, what, expr string, wantSeries bool) {
	t.Helper()
	res, err := p.query(expr)
	switch {
	case err != nil:
		t.Errorf("%s: %q: %v", what, expr, err)
		return
	case wantSeries && len(res) == 0:
		t.Errorf("%s: %q returned no series", what, expr)
	}
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: %q names no metric of the services", what, expr)
	}
	for _, name := range names {
		if res, err := p.query(fmt.Sprintf(`count({__name__=%q})`, name)); err != nil || len(res) == 0 {
			t.Errorf("%s: metric %s has no series (%v)", what, name, err)
		}
	}
}

// query runs an instant query and returns its vector.
func (p *promServer) query(expr string) ([]json.RawMessage, error) {
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", out.Error)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", out.Data.ResultType)
	}
	return out.Data.Result, nil
}

type promRule struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	Type      string `json:"type"`
}

// rules lists the alerting rules Prometheus loaded.
func (p *promServer) rules() ([]promRule, error) {
	var out struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/rules?type=alert", &out); err != nil {
		return nil, err
	}
	var rules []promRule
	for _, g := range out.Data.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules, nil
}

func (p *promServer) get(path string, v any) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
