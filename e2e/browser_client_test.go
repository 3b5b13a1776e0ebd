package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// clientBundle is the browser client as the console serves it, built from
// clients/js.
var clientBundle = filepath.Join("..", "read-api", "internal", "console", "static", "notify-client.js")

// clientPage loads the client and records what it delivers; getToken asks
// the page's own origin for a token, as an app asks its backend.
const clientPage = `<!doctype html><meta charset="utf-8"><title>notify client</title>
<script type="module">
import { NotifyClient } from '/notify-client.js';
window.__got = []; window.__errors = []; window.__states = []; window.__urls = [];
const plainFetch = window.fetch; // record every URL the page fetches
window.fetch = (u, init) => { window.__urls.push(String(u instanceof Request ? u.url : u)); return plainFetch(u, init); };
window.start = (opts) => {
  const c = new NotifyClient({ ...opts, getToken: async () => (await fetch('/token', { cache: 'no-store' })).text() });
  c.on('*', (n) => window.__got.push({ id: n.id, topic: n.topic }));
  c.onError((e) => window.__errors.push(e.status + ' ' + e.message));
  c.onState((s) => window.__states.push(s.status));
  window.__client = c;
  return true;
};
window.__ready = true;
</script>`

// appOrigin serves the page, the client bundle and tokens from an origin
// other than read-api's, so streams are cross-origin (CORS) as in an app.
type appOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
	ttl    func(n int) time.Duration // lifetime of the n-th token (from 0)
	sub    string
	topics []string
}

func newAppOrigin(t *testing.T, sub string, topics ...string) *appOrigin {
	t.Helper()
	bundle, err := os.ReadFile(clientBundle)
	if err != nil {
		t.Fatalf("the browser client bundle (make console-js builds it): %v", err)
	}
	a := &appOrigin{sub: sub, topics: topics, ttl: func(int) time.Duration { return time.Hour }}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, clientPage)
	})
	mux.HandleFunc("/notify-client.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(bundle)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		ttl := a.ttl(len(a.tokens))
		tok, err := devtoken.Subscriber(stack.Secret, "notifications", a.sub, a.topics, ttl)
		a.tokens = append(a.tokens, tok)
		a.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, tok)
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// cors is the read-api environment that lets the page's origin stream.
func (a *appOrigin) cors(extra map[string]string) map[string]string {
	env := map[string]string{"CORS_ALLOWED_ORIGINS": a.URL}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (a *appOrigin) minted() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.tokens)
}

// startClient opens the page in ctx and starts a client with opts.
func startClient(t *testing.T, ctx context.Context, a *appOrigin, opts map[string]any) {
	t.Helper()
	run(t, ctx, 15*time.Second, chromedp.Navigate(a.URL+"/"))
	waitJS(t, ctx, 10*time.Second, "client page loaded", `window.__ready === true`)
	js, _ := json.Marshal(opts)
	var ok bool
	eval(t, ctx, fmt.Sprintf(`window.start(%s)`, js), &ok)
}

// waitJS polls a boolean expression until it holds, or fails with what the
// client recorded.
func waitJS(t *testing.T, ctx context.Context, within time.Duration, what, js string) {
	t.Helper()
	pollJS(t, ctx, within, what, js, `JSON.stringify({state: window.__client && window.__client.state, leader: window.__client && window.__client.leader,
		got: (window.__got||[]).length, errors: (window.__errors||[]).slice(-5), states: (window.__states||[]).slice(-10)})`)
}

func waitClientOpen(t *testing.T, ctx context.Context) {
	t.Helper()
	waitJS(t, ctx, 20*time.Second, "client open", `!!window.__client && window.__client.state.status === 'open'`)
}

type received struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
}

// ledger publishes in the background and keeps each topic's ids in
// publish order.
type ledger struct {
	mu      sync.Mutex
	byTopic map[string][]string
	n       int
}

func (l *ledger) add(topic, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byTopic == nil {
		l.byTopic = map[string][]string{}
	}
	l.byTopic[topic] = append(l.byTopic[topic], id)
	l.n++
}

func (l *ledger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// publishEvery publishes to topics in turn every interval until stop is
// called (which waits for the last publish). A publish that fails (Redis
// stopped) is not in the ledger; publisher retries make one that is.
func publishEvery(t *testing.T, pub *publisher.Client, l *ledger, topics []string, interval time.Duration) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
			topic := topics[i%len(topics)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := pub.Publish(ctx, publisher.Notification{Topics: []string{topic}, Type: "tick", Data: map[string]int{"i": i}})
			cancel()
			if err == nil {
				l.add(topic, res.ID)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// exactlyOnce waits until the page holds as many notifications as were
// published, then checks that each topic's are exactly the published ids,
// in publish order.
func exactlyOnce(t *testing.T, ctx context.Context, l *ledger, within time.Duration) {
	t.Helper()
	n := l.total()
	if n == 0 {
		t.Fatal("nothing was published")
	}
	waitJS(t, ctx, within, fmt.Sprintf("%d notifications", n), fmt.Sprintf(`window.__got.length >= %d`, n))
	time.Sleep(300 * time.Millisecond) // a repeat would arrive right behind
	var got []received
	eval(t, ctx, `window.__got`, &got)
	byTopic := map[string][]string{}
	for _, r := range got {
		byTopic[r.Topic] = append(byTopic[r.Topic], r.ID)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, want := range l.byTopic {
		if !slices.Equal(byTopic[topic], want) {
			t.Errorf("topic %s: received %d %v, published %d %v (exactly once, in order)", topic, len(byTopic[topic]), byTopic[topic], len(want), want)
		}
	}
	if len(got) != n {
		t.Errorf("received %d notifications, published %d", len(got), n)
	}
}

// noTokenLeak checks that no token the page used is in a pod's logs or in
// any URL the page requested.
func noTokenLeak(t *testing.T, ctx context.Context, tokens []string, pods ...*stack.Proc) {
	t.Helper()
	var urls []string
	eval(t, ctx, `[location.href, ...(window.__urls || []), ...performance.getEntriesByType('resource').map((e) => e.name)]`, &urls)
	if len(tokens) == 0 {
		t.Fatal("the page fetched no token")
	}
	streams := 0
	for _, u := range urls {
		if strings.Contains(u, "/v1/stream") {
			streams++
		}
		if strings.Contains(u, "access_token") {
			t.Errorf("the page requested %s", u)
		}
		for _, tok := range tokens {
			if strings.Contains(u, tok) {
				t.Errorf("a token is in a URL the page requested: %.80s", u)
			}
		}
	}
	if streams == 0 {
		t.Errorf("no stream request among the page's requests %v", urls)
	}
	for _, p := range pods {
		for _, tok := range tokens {
			if strings.Contains(p.Logs(), tok) || strings.Contains(p.Logs(), strings.Split(tok, ".")[2]) {
				t.Errorf("a token is in %s's log", p.Name)
			}
		}
	}
}

func clientOpts(base string, topics []string, more map[string]any) map[string]any {
	o := map[string]any{"url": base, "topics": topics, "share": false, "minDelay": 200, "maxDelay": 2000}
	for k, v := range more {
		o[k] = v
	}
	return o
}

// (a) Under publishing, the page's pod is SIGKILLed, then the next one is
// SIGTERMed (drains, answers 503 while it does): the client follows through
// the front to the third pod and receives every notification exactly once,
// in order.
func TestBrowserClientPodLoss(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	topics := []string{"device:1", "device:2"}
	a := newAppOrigin(t, "podloss", topics...)
	env := a.cors(map[string]string{"DRAIN_TIMEOUT": "2s", "LOG_LEVEL": "info"})
	w := s.StartWrite(nil)
	r1, r2, r3 := s.StartRead(env), s.StartRead(env), s.StartRead(env)
	front := frontTo(t, r1, r2, r3)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	startClient(t, ctx, a, clientOpts(front.URL, topics, nil))
	waitClientOpen(t, ctx)
	var l ledger
	stop := publishEvery(t, pub, &l, topics, 20*time.Millisecond)
	defer stop()
	waitJS(t, ctx, 10*time.Second, "first notifications", `window.__got.length >= 10`)

	r1.Kill()
	waitFor2 := func(p *stack.Proc) {
		deadline := time.Now().Add(20 * time.Second)
		for metric(t, p, "notify_read_connections") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("the page's stream did not move to %s", p.URL)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor2(r2)
	n := l.total()
	waitJS(t, ctx, 10*time.Second, "notifications on pod 2", fmt.Sprintf(`window.__got.length >= %d`, n))

	r2.Signal(syscall.SIGTERM)
	if code, err := r2.Wait(15 * time.Second); err != nil || code != 0 {
		t.Errorf("pod 2 after SIGTERM: exit %d, %v", code, err)
	}
	waitFor2(r3)
	n = l.total()
	waitJS(t, ctx, 15*time.Second, "notifications on pod 3", fmt.Sprintf(`window.__got.length >= %d`, n+10))
	stop()
	exactlyOnce(t, ctx, &l, 15*time.Second)
	var fatal bool
	eval(t, ctx, `window.__client.state.status === 'stopped'`, &fatal)
	if fatal {
		t.Error("the client stopped")
	}
	noTokenLeak(t, ctx, a.minted(), r1, r2, r3)
}

// (b) Redis stops (SIGSTOP) for 5 s while the page's pod is killed: new
// connects get 503 with Retry-After, the client keeps retrying, shows it,
// and once Redis is back it resumes: nothing lost or repeated.
func TestBrowserClientRedisStopped(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	topics := []string{"seller:7"}
	a := newAppOrigin(t, "redisstop", topics...)
	env := a.cors(nil)
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(env), s.StartRead(env)
	front := frontTo(t, r1, r2)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	startClient(t, ctx, a, clientOpts(front.URL, topics, nil))
	waitClientOpen(t, ctx)
	var l ledger
	for i := range 5 {
		ids := publishAll(t, pub, publisher.Notification{Topics: topics, Type: "tick", Data: i})
		l.add(topics[0], ids[0])
	}
	waitJS(t, ctx, 10*time.Second, "first notifications", `window.__got.length >= 5`)

	s.Redis.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	t.Cleanup(func() { s.Redis.Signal(syscall.SIGCONT) })
	r1.Kill()
	waitJS(t, ctx, 10*time.Second, "a 503 seen and retrying", `window.__errors.some((e) => e.startsWith('503')) && window.__states.includes('retrying')`)
	time.Sleep(time.Until(stopped.Add(5 * time.Second)))
	s.Redis.Signal(syscall.SIGCONT)
	for i := range 5 {
		ids := publishAll(t, pub, publisher.Notification{Topics: topics, Type: "tick", Data: 5 + i})
		l.add(topics[0], ids[0])
	}
	waitClientOpen(t, ctx)
	exactlyOnce(t, ctx, &l, 20*time.Second)
	var status string
	eval(t, ctx, `window.__client.state.status`, &status)
	if status != "open" {
		t.Errorf("client state %s, want open", status)
	}
}

// (c, e) The token expires mid-stream under publishing: stream.expired, a
// fresh token from getToken, resume from the cursor with nothing lost or
// repeated; no token is ever in read-api's access log or in a URL the page
// requested (they travel in the Authorization header).
func TestBrowserClientTokenRefresh(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	topics := []string{"seller:9", "seller:10"}
	a := newAppOrigin(t, "refresh", topics...)
	a.ttl = func(n int) time.Duration {
		if n == 0 {
			return 3 * time.Second
		}
		return time.Hour
	}
	r := s.StartRead(a.cors(map[string]string{"LOG_LEVEL": "info"}))
	w := s.StartWrite(nil)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	ctx := newBrowser(t)

	startClient(t, ctx, a, clientOpts(r.URL, topics, nil))
	waitClientOpen(t, ctx)
	var l ledger
	stop := publishEvery(t, pub, &l, topics, 25*time.Millisecond)
	defer stop()
	deadline := time.Now().Add(15 * time.Second)
	for len(a.minted()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the client did not fetch a fresh token after stream.expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	n := l.total()
	waitJS(t, ctx, 10*time.Second, "notifications after the refresh", fmt.Sprintf(`window.__got.length >= %d`, n+10))
	stop()
	exactlyOnce(t, ctx, &l, 15*time.Second)
	if got := len(a.minted()); got != 2 {
		t.Errorf("%d tokens fetched, want 2 (the first and one after stream.expired)", got)
	}
	var errs []string
	eval(t, ctx, `window.__errors`, &errs)
	for _, e := range errs {
		if strings.HasPrefix(e, "401") {
			t.Errorf("a connect was refused: %s", e)
		}
	}
	if !strings.Contains(r.Logs(), "/v1/stream") {
		t.Fatal("read-api wrote no access log line for the stream: the leak check would prove nothing")
	}
	noTokenLeak(t, ctx, a.minted(), r)
}

// (d) Three tabs of one origin asking for the same stream hold one stream
// on the server; all three receive everything. The leader tab closes:
// another takes over from its cursor, and no tab misses or repeats one.
func TestBrowserClientSharedTabs(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	topics := []string{"fleet:acme", "device:42"}
	a := newAppOrigin(t, "tabs", topics...)
	env := a.cors(nil)
	w := s.StartWrite(nil)
	r1, r2 := s.StartRead(env), s.StartRead(env)
	front := frontTo(t, r1, r2)
	pub := publisher.New(w.URL, publisher.WithToken(s.PublisherToken("svc")))
	browser := newBrowser(t) // its own tab stays blank: closing it would close the browser

	opts := clientOpts(front.URL, topics, map[string]any{"share": true})
	var tabs []context.Context
	var cancels []context.CancelFunc
	for range 3 {
		tab, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		opened := make(chan error, 1)
		go func() { opened <- chromedp.Do(tab) }() // the first run opens the tab: no timeout on its context
		select {
		case err := <-opened:
			if err != nil {
				t.Fatalf("open a tab: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a new tab did not open within 30s")
		}
		tabs, cancels = append(tabs, tab), append(cancels, cancel)
	}
	for _, tab := range tabs {
		startClient(t, tab, a, opts)
	}
	for _, tab := range tabs {
		waitClientOpen(t, tab)
	}
	connections := func() float64 {
		return metric(t, r1, "notify_read_connections") + metric(t, r2, "notify_read_connections")
	}
	if n := connections(); n != 1 {
		t.Fatalf("three tabs hold %v streams on the server, want 1", n)
	}
	leader := -1
	for i, tab := range tabs {
		var is bool
		eval(t, tab, `window.__client.leader`, &is)
		if is {
			if leader >= 0 {
				t.Fatalf("tabs %d and %d both lead", leader, i)
			}
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no tab leads")
	}

	var l ledger
	stop := publishEvery(t, pub, &l, topics, 20*time.Millisecond)
	defer stop()
	waitJS(t, tabs[(leader+1)%3], 10*time.Second, "notifications in a follower", `window.__got.length >= 10`)
	t.Logf("tab %d leads; closing it", leader)
	cancels[leader]() // close the leader tab
	var rest []context.Context
	for i, tab := range tabs {
		if i != leader {
			rest = append(rest, tab)
		}
	}
	n := l.total()
	for _, tab := range rest {
		waitJS(t, tab, 15*time.Second, "notifications after the leader left", fmt.Sprintf(`window.__got.length >= %d`, n+10))
	}
	stop()
	for _, tab := range rest {
		exactlyOnce(t, tab, &l, 15*time.Second)
	}
	deadline := time.Now().Add(10 * time.Second)
	for connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after the leader left, the server holds %v streams, want 1", connections())
		}
		time.Sleep(100 * time.Millisecond)
	}
	leaders := 0
	for _, tab := range rest {
		var is bool
		eval(t, tab, `window.__client.leader`, &is)
		if is {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders among the remaining tabs, want 1", leaders)
	}
}
