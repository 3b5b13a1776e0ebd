package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"notify/e2e/stack"
	"notify/pkg/devtoken"
	"notify/pkg/publisher"
)

// chromiumPath is Debian's chromium; CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

var consoleOn = map[string]string{"CONSOLE_ENABLED": "true"}

// newBrowser starts a headless chromium with a fresh profile. A missing
// chromium fails the test: browser behaviour is part of the API.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("chromium is required for the browser tests and was not found at %s (%v): "+
			"install Debian's chromium (apt-get install -y chromium), as .ci/run does, or set CHROMIUM", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 900),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // the first run starts the browser: no timeout on it
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium %s: %v", path, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium %s did not start within 30s", path)
	}
	// Keep what the page logs; show it if the test fails.
	var mu sync.Mutex
	var logs []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			mu.Lock()
			logs = append(logs, m.String())
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(logs, "\n"))
		}
	})
	return ctx
}

// run runs actions with a deadline.
func run(t *testing.T, ctx context.Context, within time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates js in the page into out.
func eval[T any](t *testing.T, ctx context.Context, js string, out *T) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("browser: evaluate %.60q: %v", js, err)
	}
	*out = v
}

// waitFor polls js (a boolean expression) until it holds, or fails after
// within with what the console shows.
func waitFor(t *testing.T, ctx context.Context, within time.Duration, what, js string) {
	t.Helper()
	pollJS(t, ctx, within, what, js, `JSON.stringify({state: document.getElementById('state').dataset.state,
		reconnects: document.getElementById('reconnects').textContent,
		banner: document.getElementById('banner').textContent,
		rows: document.querySelectorAll('#log li[data-id]').length})`)
}

// pollJS polls js until it holds, or fails after within with the value of
// dump (what the page shows).
func pollJS(t *testing.T, ctx context.Context, within time.Duration, what, js, dump string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ok bool
		eval(t, ctx, js, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var page string
			eval(t, ctx, dump, &page)
			t.Fatalf("browser: %s: not within %s; page: %s", what, within, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleURL is the console with its fields set from the fragment, which
// makes it connect at once.
func consoleURL(base, token string, topics, types []string) string {
	frag := url.Values{"token": {token}, "topics": {strings.Join(topics, ",")}, "types": {strings.Join(types, ",")}}
	return base + "/console/#" + frag.Encode()
}

func waitOpen(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, 10*time.Second, "console state open", `document.getElementById('state').dataset.state === 'open'`)
}

func waitRows(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	waitFor(t, ctx, 15*time.Second, fmt.Sprintf("%d log rows", n), fmt.Sprintf(`document.querySelectorAll('#log li[data-id]').length >= %d`, n))
}

// logIDs are the notification ids of the log rows, newest first.
func logIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var ids []string
	eval(t, ctx, `Array.from(document.querySelectorAll('#log li[data-id]'), li => li.dataset.id)`, &ids)
	return ids
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	var s string
	eval(t, ctx, fmt.Sprintf(`document.getElementById(%q).textContent`, id), &s)
	return s
}

// sameSet fails unless got holds every id of want exactly once and nothing else.
func sameSet(t *testing.T, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("notification %s shown %d times", id, n)
		}
		if !slices.Contains(want, id) {
			t.Errorf("notification %s shown but never published", id)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			t.Errorf("notification %s published but not shown", id)
		}
	}
}

func publishAll(t *testing.T, c *publisher.Client, ns ...publisher.Notification) []string {
	t.Helper()
	var ids []string
	for _, n := range ns {
		res, err := c.Publish(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	return ids
}

// saveScreenshot writes a PNG of the page to e2e/testdata/out (ignored by
// git) and, with UPDATE_DOCS_SCREENSHOT=1, to docs/console.png.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	dir := filepath.Join("testdata", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(out)
	t.Logf("screenshot: %s", abs)
	if os.Getenv("UPDATE_DOCS_SCREENSHOT") != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The console connects with a token, shows what write-api accepted (once
// each), and its board holds the latest event per topic.
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(consoleOn)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("device-fleet")))
	ctx := newBrowser(t)

	topics := []string{"device:7f3a-01", "device:7f3a-02", "device:9c1e-07", "seller:42"}
	tok := s.SubscriberToken("admin-screen", topics...)
	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(r.URL, tok, topics, []string{"device.status", "task.assigned", "maintenance"})))
	waitOpen(t, ctx)

	type status struct {
		State   string `json:"state"`
		Battery int    `json:"battery"`
		FW      string `json:"fw,omitempty"`
	}
	ids := publishAll(t, pub,
		publisher.Notification{Topics: []string{"device:7f3a-01"}, Type: "device.status", Data: status{"online", 91, "2.4.1"}},
		publisher.Notification{Topics: []string{"device:7f3a-02"}, Type: "device.status", Data: status{"online", 64, "2.4.1"}},
		publisher.Notification{Topics: []string{"device:9c1e-07"}, Type: "device.status", Data: status{"charging", 18, "2.3.9"}},
		publisher.Notification{Topics: []string{"seller:42"}, Type: "task.assigned", Data: map[string]any{"taskId": 7, "title": "Restock shelf B3"}},
		publisher.Notification{Topics: []string{"device:7f3a-02"}, Type: "device.status", Data: status{"offline", 63, "2.4.1"}},
		publisher.Notification{Topics: []string{"broadcast"}, Type: "maintenance", Data: map[string]string{"window": "02:00-02:30 UTC"}},
		publisher.Notification{Topics: []string{"device:7f3a-01"}, Type: "device.status", Data: status{"online", 90, "2.4.1"}},
	)
	waitRows(t, ctx, len(ids))
	sameSet(t, logIDs(t, ctx), ids)
	if got := logIDs(t, ctx); got[0] != ids[len(ids)-1] {
		t.Errorf("newest log row %s, want the last published %s", got[0], ids[len(ids)-1])
	}

	var board map[string]string
	eval(t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll('#board [data-topic]'), c => [c.dataset.topic, c.dataset.id]))`, &board)
	want := map[string]string{"device:7f3a-01": ids[6], "device:7f3a-02": ids[4], "device:9c1e-07": ids[2], "seller:42": ids[3], "broadcast": ids[5]}
	if fmt.Sprint(board) != fmt.Sprint(want) {
		t.Errorf("board (topic → latest id) %v, want %v", board, want)
	}
	if c := text(t, ctx, "cursor"); c == "" || c == "–" {
		t.Errorf("cursor %q, want the last event id", c)
	}
	if n := text(t, ctx, "count"); n != fmt.Sprint(len(ids)) {
		t.Errorf("event count %s, want %d", n, len(ids))
	}
	saveScreenshot(t, ctx, "console.png")
}

// frontTo is a small reverse proxy in front of read-api pods: each request
// goes to the first pod that accepts a TCP connection. It does not buffer
// (FlushInterval -1), as an SSE-aware front must not.
func frontTo(t *testing.T, pods ...*stack.Proc) *httptest.Server {
	t.Helper()
	type backend struct {
		host  string
		proxy *httputil.ReverseProxy
	}
	var backends []backend
	for _, p := range pods {
		u, _ := url.Parse(p.URL)
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.FlushInterval = -1
		backends = append(backends, backend{u.Host, rp})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, b := range backends {
			conn, err := net.DialTimeout("tcp", b.host, 300*time.Millisecond)
			if err != nil {
				continue
			}
			_ = conn.Close()
			b.proxy.ServeHTTP(w, r)
			return
		}
		http.Error(w, "no live read-api", http.StatusBadGateway)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv
}

// The pod serving the page's stream dies; the browser's EventSource
// reconnects through the front to the other pod, resumes by cursor, and
// the page shows every notification exactly once, including those
// published while it was away.
func TestBrowserFailover(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(consoleOn), s.StartRead(consoleOn)
	front := frontTo(t, r1, r2)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	topics := []string{"device:1", "device:2"}
	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(front.URL, s.SubscriberToken("fo", topics...), topics, []string{"status"})))
	waitOpen(t, ctx)
	if n := metric(t, r1, "notify_read_connections"); n != 1 {
		t.Fatalf("the page's stream is not on pod 1 (connections %v)", n)
	}

	note := func(i int) publisher.Notification {
		return publisher.Notification{Topics: []string{topics[i%2]}, Type: "status", Data: map[string]int{"seq": i}}
	}
	var ids []string
	for i := range 6 {
		ids = append(ids, publishAll(t, pub, note(i))...)
	}
	waitRows(t, ctx, len(ids))

	r1.Kill()
	for i := 6; i < 16; i++ { // while the page is away
		ids = append(ids, publishAll(t, pub, note(i))...)
	}
	waitRows(t, ctx, len(ids))
	waitOpen(t, ctx)
	for i := 16; i < 20; i++ { // and live again, on pod 2
		ids = append(ids, publishAll(t, pub, note(i))...)
	}
	waitRows(t, ctx, len(ids))

	sameSet(t, logIDs(t, ctx), ids)
	if n := text(t, ctx, "reconnects"); n == "0" {
		t.Errorf("reconnects %s, want at least 1", n)
	}
	if d := text(t, ctx, "dupes"); d != "0" {
		t.Errorf("the server sent %s duplicates on resume", d)
	}
	if n := metric(t, r2, "notify_read_connections"); n != 1 {
		t.Errorf("pod 2 holds %v streams, want the page's 1", n)
	}
}

// The console streams through the browser client: the token travels in the
// Authorization header, never in a URL the page requests nor in read-api's
// access log, and the events arrive in publish order.
func TestBrowserConsoleTokenInHeader(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(map[string]string{"CONSOLE_ENABLED": "true", "LOG_LEVEL": "info"})
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	topics := []string{"seller:42"}
	tok := s.SubscriberToken("header", topics...)
	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(r.URL, "", topics, nil)))
	var ok bool // record every URL the page fetches (a stream's URL is in no timing entry while it is open)
	eval(t, ctx, `(() => { const f = window.fetch; window.__urls = []; window.fetch = (u, i) => { window.__urls.push(String(u)); return f(u, i); }; return true; })()`, &ok)
	run(t, ctx, 10*time.Second, chromedp.SetValue(chromedp.ID("token"), tok), chromedp.Click(chromedp.ID("connect")))
	waitOpen(t, ctx)
	var ids []string
	for i := range 5 {
		ids = append(ids, publishAll(t, pub, publisher.Notification{Topics: topics, Type: "task.assigned", Data: map[string]int{"taskId": i}})...)
	}
	waitRows(t, ctx, len(ids))
	console := logIDs(t, ctx)
	slices.Reverse(console) // newest first on the page
	if fmt.Sprint(console) != fmt.Sprint(ids) {
		t.Errorf("console ids %v, want %v in publish order", console, ids)
	}
	if !strings.Contains(r.Logs(), "/v1/stream") {
		t.Fatal("read-api wrote no access log line for the stream: the leak check would prove nothing")
	}
	noTokenLeak(t, ctx, []string{tok}, r)
}

// At the token's exp the console shows stream.expired, stops, asks for a
// fresh token, and with it resumes from its cursor: nothing published in
// between is lost.
func TestBrowserConsoleExpiry(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(consoleOn)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	topics := []string{"device:5"}
	short, err := devtoken.Subscriber(stack.Secret, "notifications", "exp", topics, 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(r.URL, short, topics, []string{"status"})))
	waitOpen(t, ctx)
	ids := publishAll(t, pub, publisher.Notification{Topics: topics, Type: "status", Data: "before"})
	waitRows(t, ctx, 1)

	waitFor(t, ctx, 15*time.Second, "state expired", `document.getElementById('state').dataset.state === 'expired'`)
	var bannerKind string
	eval(t, ctx, `document.getElementById('banner').dataset.kind || ''`, &bannerKind)
	if bannerKind != "expired" {
		t.Errorf("banner kind %q, want expired", bannerKind)
	}
	var expiredRows int
	eval(t, ctx, `document.querySelectorAll('#log li[data-type="stream.expired"]').length`, &expiredRows)
	if expiredRows != 1 {
		t.Errorf("%d stream.expired log rows, want 1", expiredRows)
	}

	ids = append(ids, publishAll(t, pub, publisher.Notification{Topics: topics, Type: "status", Data: "while expired"})...)
	fresh := s.SubscriberToken("exp", topics...)
	run(t, ctx, 10*time.Second,
		chromedp.SetValue(chromedp.ID("token"), fresh),
		chromedp.Click(chromedp.ID("connect")))
	waitOpen(t, ctx)
	waitRows(t, ctx, len(ids))
	ids = append(ids, publishAll(t, pub, publisher.Notification{Topics: topics, Type: "status", Data: "after"})...)
	waitRows(t, ctx, len(ids))
	sameSet(t, logIDs(t, ctx), ids)
}

// Reconnecting from a cursor older than the history (the console keeps its
// cursor across Disconnect/Connect) makes the server send stream.reset:
// the page shows it as a reset banner and a control row in the log, then
// shows what history still holds and live events.
func TestBrowserConsoleReset(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(map[string]string{"HISTORY_MAX_LEN": "10"}), s.StartRead(consoleOn)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	topics := []string{"device:3"}
	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(r.URL, s.SubscriberToken("reset", topics...), topics, []string{"status"})))
	waitOpen(t, ctx)
	first := publishAll(t, pub, publisher.Notification{Topics: topics, Type: "status", Data: "seen"})
	waitRows(t, ctx, 1)
	run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("disconnect")))
	waitFor(t, ctx, 5*time.Second, "state closed", `document.getElementById('state').dataset.state === 'closed'`)

	batch := make([]publisher.Notification, 300) // trimming is per 100-entry node
	for i := range batch {
		batch[i] = publisher.Notification{Topics: topics, Type: "status", Data: i}
	}
	ids, err := pub.PublishBatch(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("connect")))
	waitFor(t, ctx, 10*time.Second, "reset banner", `document.getElementById('banner').dataset.kind === 'reset'`)
	waitOpen(t, ctx)

	var shown struct {
		Hidden bool   `json:"hidden"`
		Height int    `json:"height"`
		Text   string `json:"text"`
		Rows   []struct {
			Topic   string `json:"topic"`
			Control bool   `json:"control"`
		} `json:"rows"`
	}
	eval(t, ctx, `(() => { const b = document.getElementById('banner'); return {hidden: b.hidden, height: b.offsetHeight, text: b.textContent,
		rows: Array.from(document.querySelectorAll('#log li[data-type="stream.reset"]'), li => ({topic: li.dataset.topic, control: li.classList.contains('control')}))}; })()`, &shown)
	if shown.Hidden || shown.Height == 0 || !strings.Contains(shown.Text, "device:3") || strings.Contains(shown.Text, "(unknown)") {
		t.Errorf("reset banner not shown with its topic and reason: %+v", shown)
	}
	if len(shown.Rows) != 1 || !shown.Rows[0].Control || !strings.Contains(shown.Rows[0].Topic, "device:3") {
		t.Errorf("stream.reset log rows %+v, want one control row for device:3", shown.Rows)
	}

	// The stream continues: the tail of history, then live events.
	last := ids[len(ids)-1]
	waitFor(t, ctx, 10*time.Second, "the newest history event", fmt.Sprintf(`document.querySelector('#log li[data-id=%q]') !== null`, last))
	live := publishAll(t, pub, publisher.Notification{Topics: topics, Type: "status", Data: "live"})
	waitFor(t, ctx, 10*time.Second, "a live event", fmt.Sprintf(`document.querySelector('#log li[data-id=%q]') !== null`, live[0]))
	if got := logIDs(t, ctx); got[0] != live[0] || !slices.Contains(got, first[0]) {
		t.Errorf("log newest %s, want %s; still holds the first event: %v", got[0], live[0], slices.Contains(got, first[0]))
	}
	if d := text(t, ctx, "dupes"); d != "0" {
		t.Errorf("the server replayed %s events the cursor had seen", d)
	}
}

// boardState is the keyed board of topic as the console shows it: key →
// "type data".
func boardState(t *testing.T, ctx context.Context, topic string) map[string]string {
	t.Helper()
	var got map[string]string
	eval(t, ctx, fmt.Sprintf(`Object.fromEntries(Array.from(document.querySelectorAll('#board [data-topic=%q] tr[data-key]'),
		tr => [tr.dataset.key, tr.dataset.type + ' ' + tr.querySelector('td.data').textContent]))`, topic), &got)
	return got
}

// waitBoard waits until the keyed board of topic shows exactly want.
func waitBoard(t *testing.T, ctx context.Context, what, topic string, want map[string]string) {
	t.Helper()
	var js strings.Builder
	fmt.Fprintf(&js, `(() => { const rows = document.querySelectorAll('#board [data-topic=%q] tr[data-key]'); const want = {`, topic)
	for k, v := range want {
		fmt.Fprintf(&js, "%q: %q,", k, v)
	}
	js.WriteString(`}; return rows.length === Object.keys(want).length && Array.from(rows).every(tr =>
		want[tr.dataset.key] === tr.dataset.type + ' ' + tr.querySelector('td.data').textContent); })()`)
	pollJS(t, ctx, 15*time.Second, what, js.String(), fmt.Sprintf(`JSON.stringify({synced: document.getElementById('synced').dataset.synced,
		banner: document.getElementById('banner').textContent, board: document.getElementById('board').innerText})`))
	if got := boardState(t, ctx, topic); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: board %v, want %v", what, got, want)
	}
}

func waitSynced(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, 15*time.Second, "snapshot synced", `document.getElementById('synced').dataset.synced === 'true'`)
}

// With Snapshot on, the console opens the stream with snapshot=true and its
// board shows each topic's keyed state: the current value of every key
// (removed keys gone), updated live, and rebuilt after a stream.reset.
func TestBrowserConsoleSnapshotBoard(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w := s.StartWrite(map[string]string{"HISTORY_MAX_LEN": "10"})
	r1, r2 := s.StartRead(consoleOn), s.StartRead(consoleOn)
	front := frontTo(t, r1, r2)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("fleet")))
	ctx := newBrowser(t)

	const topic = "fleet:acme"
	status := func(key, state string) publisher.Notification {
		return publisher.Notification{Topics: []string{topic}, Type: "device.status", Key: key, Data: map[string]string{"state": state}}
	}
	removed := func(key string) publisher.Notification {
		return publisher.Notification{Topics: []string{topic}, Type: "device.removed", Key: key, Data: nil}
	}
	publishAll(t, pub, status("dev-1", "online"), status("dev-2", "online"), status("dev-3", "charging"),
		status("dev-1", "offline"), removed("dev-2"),
		publisher.Notification{Topics: []string{topic}, Type: "note", Data: "no key: not state"})

	run(t, ctx, 15*time.Second, chromedp.Navigate(consoleURL(front.URL, s.SubscriberToken("admin", topic), []string{topic}, nil)+"&snapshot=true"))
	waitOpen(t, ctx)
	waitSynced(t, ctx)
	if n := metric(t, r1, "notify_read_connections"); n != 1 {
		t.Fatalf("the page's stream is not on pod 1 (connections %v)", n)
	}
	var checked bool
	eval(t, ctx, `document.getElementById('snapshot').checked`, &checked)
	if !checked {
		t.Error("the snapshot checkbox is off after a link with snapshot=true")
	}
	waitBoard(t, ctx, "the snapshot", topic, map[string]string{
		"dev-1": `device.status {"state":"offline"}`,
		"dev-3": `device.status {"state":"charging"}`,
	})
	waitFor(t, ctx, 5*time.Second, "a card for broadcast (no keys)", `document.querySelector('#board [data-topic="broadcast"][data-keys="0"]') !== null`)
	if n := text(t, ctx, "count"); n != "0" {
		t.Errorf("event count %s after the snapshot, want 0: snapshot entries are state, not new events", n)
	}

	live := publishAll(t, pub, status("dev-3", "online"), status("dev-4", "online"), removed("dev-1"))
	waitRows(t, ctx, len(live))
	waitBoard(t, ctx, "live changes", topic, map[string]string{
		"dev-3": `device.status {"state":"online"}`,
		"dev-4": `device.status {"state":"online"}`,
	})
	var rowID string
	eval(t, ctx, fmt.Sprintf(`document.querySelector('#board [data-topic=%q] tr[data-key="dev-4"]').dataset.id`, topic), &rowID)
	if rowID != live[1] {
		t.Errorf("dev-4's row shows notification %s, want %s", rowID, live[1])
	}
	saveScreenshot(t, ctx, "console-snapshot.png")

	// The page's pod dies while history moves past its cursor: the other pod
	// (held until then) answers the resume with stream.reset and the
	// topic's snapshot, and the board is rebuilt from it.
	r2.Signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			r2.Signal(syscall.SIGCONT)
		}
	})
	r1.Kill()
	batch := make([]publisher.Notification, 300) // trimming is per 100-entry node
	for i := range batch {
		batch[i] = status(fmt.Sprintf("dev-%d", 5+i%3), fmt.Sprint("seq ", i))
	}
	batch = append(batch, removed("dev-3"))
	if _, err := pub.PublishBatch(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	r2.Signal(syscall.SIGCONT)
	stopped = false
	waitFor(t, ctx, 20*time.Second, "reset banner", `document.getElementById('banner').dataset.kind === 'reset'`)
	waitSynced(t, ctx)
	waitBoard(t, ctx, "the board rebuilt after stream.reset", topic, map[string]string{
		"dev-4": `device.status {"state":"online"}`,
		"dev-5": `device.status {"state":"seq 297"}`,
		"dev-6": `device.status {"state":"seq 298"}`,
		"dev-7": `device.status {"state":"seq 299"}`,
	})
}
