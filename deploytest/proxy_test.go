package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxy runs deploy/nginx/nginx.conf in Debian's nginx in front of two
// read pods on loopback: events cross it unbuffered, and a stream whose pod
// stops resumes on the other pod by Last-Event-ID with no gap or duplicate.
// Finally the same config with proxy_buffering on must fail the 100 ms check.
//
// Why both: read-api sends X-Accel-Buffering: no, which nginx honours, so a
// plain live run passes whatever the config says about buffering. startProxy
// therefore ignores that header (a real pod can only turn buffering off with
// it, so this is stricter, never looser), leaving the config's own setting,
// including any per-location override the static check misses, to decide.
// The buffered run shows that the probe does see buffering: without it, a
// probe that could not (too little data, a changed nginx) would pass forever.
func TestProxy(t *testing.T) {
	be := realBackend(t, 2) // builds the binaries first: the clock starts after
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	proxyURL := startProxy(t, proxyConf(t), []string{be.pods[0].addr, be.pods[1].addr})
	url := proxyURL + be.streamPath

	s := openStream(ctx, t, url, be.header, "")
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q through the proxy", ct)
	}
	if ce := s.resp.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("stream compressed by the proxy (Content-Encoding %q)", ce)
	}
	var last sseEvent
	for i := range 5 {
		data := fmt.Sprintf(`{"n":%d}`, i)
		start := time.Now()
		be.publish(t, data)
		last = s.next(ctx, t)
		if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
			t.Errorf("event %d crossed the proxy in %v, want <= 100ms", i, elapsed)
		}
		if got := be.decode(last.data); got != data {
			t.Fatalf("event %d: data %q, want %q", i, got, data)
		}
	}

	serving, other := servingPod(t, be)
	serving.stop()
	s.waitEnd(ctx, t)
	missed := []string{`{"n":"missed-1"}`, `{"n":"missed-2"}`}
	for _, data := range missed {
		be.publish(t, data)
	}

	s2 := openStream(ctx, t, url, be.header, last.id)
	if n := other.streams(); n != 1 {
		t.Fatalf("resumed stream: %d streams on the surviving pod, want 1", n)
	}
	for _, data := range missed {
		if ev := s2.next(ctx, t); be.decode(ev.data) != data {
			t.Fatalf("replay after resume: got %+v, want data %s", ev, data)
		}
	}
	live := `{"n":"live"}`
	be.publish(t, live)
	if ev := s2.next(ctx, t); be.decode(ev.data) != live {
		t.Fatalf("live after resume: got %+v, want data %s", ev, live)
	}

	checkBufferingDetected(ctx, t, be, other)
}

// checkBufferingDetected runs the config with proxy_buffering on in front of
// p (which it then stops) and requires the 100 ms check to fail there.
func checkBufferingDetected(ctx context.Context, t *testing.T, be *backend, p *pod) {
	t.Helper()
	conf := proxyConf(t)
	if strings.Count(conf, "proxy_buffering off;") != 1 {
		t.Fatal("nginx.conf: want exactly one `proxy_buffering off;` to flip")
	}
	buffered := startProxy(t, strings.Replace(conf, "proxy_buffering off;", "proxy_buffering on;", 1), []string{p.addr})
	before := p.streams()
	s := startStream(ctx, t, buffered+be.streamPath, be.header, "")
	// The pod counts a stream once its subscriptions are live: from then on
	// a publish reaches it, whether or not the proxy passes anything on.
	for p.streams() == before {
		select {
		case <-ctx.Done():
			t.Fatal("buffered proxy: the stream never reached the pod")
		case <-time.After(10 * time.Millisecond):
		}
	}
	data := `{"n":"buffered"}`
	be.publish(t, data)
	// Ten times the bound: the event is held, not merely late.
	select {
	case ev := <-s.events:
		t.Fatalf("proxy_buffering on: event %+v arrived anyway; the 100 ms check cannot catch buffering", ev)
	case <-time.After(time.Second):
	}
	// The event was held, not lost: the pod's close flushes it out.
	p.stop()
	if ev := s.next(ctx, t); be.decode(ev.data) != data {
		t.Fatalf("buffered proxy, after the pod stopped: got %+v, want data %s", ev, data)
	}
}

// servingPod returns the pod holding the single open stream, and the other one.
func servingPod(t *testing.T, be *backend) (serving, other *pod) {
	t.Helper()
	a, b := be.pods[0], be.pods[1]
	switch {
	case a.streams() == 1 && b.streams() == 0:
		return a, b
	case a.streams() == 0 && b.streams() == 1:
		return b, a
	}
	t.Fatalf("open streams per pod %d and %d, want one in all", a.streams(), b.streams())
	return nil, nil
}

// TestProxyConfigSSESettings checks the directives that the live test cannot
// observe in seconds: timeouts above MAX_CONNECTION_AGE and token-free logs.
func TestProxyConfigSSESettings(t *testing.T) {
	t.Parallel()
	conf := proxyConf(t)
	directives := map[string][]string{}
	for _, stmt := range strings.FieldsFunc(stripComments(conf), func(r rune) bool {
		return r == ';' || r == '{' || r == '}'
	}) {
		if f := strings.Fields(stmt); len(f) > 0 {
			directives[f[0]] = append(directives[f[0]], strings.Join(f[1:], " "))
		}
	}
	for name, want := range map[string]string{
		"proxy_buffering":    "off",
		"proxy_http_version": "1.1",
		"proxy_set_header":   `Connection ""`,
		"gzip":               "off",
	} {
		if !slices.Contains(directives[name], want) {
			t.Errorf("nginx.conf: want %s %s, have %q", name, want, directives[name])
		}
	}
	// MAX_CONNECTION_AGE defaults to 1h, jittered by up to +10%.
	longest := time.Hour + time.Hour/10
	for _, name := range []string{"proxy_read_timeout", "proxy_send_timeout", "send_timeout"} {
		v := directives[name]
		d, err := time.ParseDuration(strings.Join(v, ""))
		if len(v) != 1 || err != nil || d <= longest {
			t.Errorf("nginx.conf: %s %q, want one value above %v", name, v, longest)
		}
	}
	// access_token may travel in the query string: logs must not hold it.
	for _, format := range directives["log_format"] {
		for _, leak := range []string{"$request ", "$request\"", "$request_uri", "$args", "$query_string", "$arg_"} {
			if strings.Contains(format, leak) {
				t.Errorf("nginx.conf: log_format uses %s, which can log tokens", strings.Trim(leak, ` "`))
			}
		}
	}
}

func stripComments(conf string) string {
	var b strings.Builder
	for line := range strings.Lines(conf) {
		line, _, _ = strings.Cut(line, "#")
		b.WriteString(line + "\n")
	}
	return b.String()
}

// startProxy runs conf (the repository's nginx.conf, or a mutation of it) with
// listen.conf and upstreams.conf generated for loopback, and returns the
// proxy's base URL. The upstream's X-Accel-Buffering header is ignored.
func startProxy(t *testing.T, conf string, upstreams []string) string {
	t.Helper()
	bin := nginxBinary(t)
	root := repoRoot(t)
	dir := t.TempDir()
	confDir, prefix := filepath.Join(dir, "conf"), filepath.Join(dir, "prefix")
	for _, d := range []string{confDir, prefix} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	files := map[string]string{
		"nginx.conf":     conf,
		"upstreams.conf": upstreamServers(t, root, upstreams),
		// Server level, like the config's own proxy_buffering (see TestProxy).
		"listen.conf": fmt.Sprintf("listen 127.0.0.1:%d;\nproxy_ignore_headers X-Accel-Buffering;\n", port),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(confDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-p", prefix + "/", "-e", "stderr", "-c", filepath.Join(confDir, "nginx.conf")}

	check, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(check, bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: master stops its workers
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own process group
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	})

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHealthy(t.Context(), base+"/proxy-health", exited); err != nil {
		t.Fatalf("nginx did not come up: %v", err)
	}
	return base
}

// nginxBinary finds Debian's nginx, failing (never skipping) when it is absent.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	const sbin = "/usr/sbin/nginx" // not on a non-root PATH
	if _, err := os.Stat(sbin); err != nil {
		t.Fatal("nginx not found in PATH or /usr/sbin: the front-proxy test needs Debian's nginx (apt-get install -y nginx-light)")
	}
	return sbin
}

// upstreamServers turns the compose upstreams.conf server line into one line
// per loopback address, keeping its parameters (max_fails, fail_timeout).
func upstreamServers(t *testing.T, root string, addrs []string) string {
	t.Helper()
	const composeAddr = "read-api:8081"
	data, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "upstreams.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var template string
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(strings.TrimSpace(line), "server ") {
			if template != "" {
				t.Fatal("upstreams.conf: want exactly one server line")
			}
			template = line
		}
	}
	if !strings.Contains(template, composeAddr) {
		t.Fatalf("upstreams.conf: no server line for %s", composeAddr)
	}
	var b strings.Builder
	for _, addr := range addrs {
		b.WriteString(strings.Replace(template, composeAddr, addr, 1))
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHealthy polls url until it answers 200, the process exits, or 10 s pass.
func waitHealthy(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("nginx exited")
		case <-ctx.Done():
			return errors.New("no 200 from " + url + " within 10s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// proxyConf is the repository's deploy/nginx/nginx.conf.
func proxyConf(t *testing.T) string {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(conf)
}
