package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"notify/pkg/auth"
	"notify/pkg/devtoken"
	"notify/pkg/redistest"
)

// Secret is the HS256 key every process of a stack shares.
const Secret = "e2e-secret-e2e-secret-e2e-secret-0123456789"

// Stack is one Redis and the processes a test started against it.
type Stack struct {
	t     testing.TB
	Redis *redistest.Server
	Env   map[string]string // environment every process gets
}

// New starts a redis-server (with opts) and returns a stack with no
// services yet. Everything stops at test cleanup.
func New(t testing.TB, opts ...redistest.Option) *Stack {
	t.Helper()
	if _, err := Binaries(); err != nil {
		t.Fatal(err)
	}
	r := redistest.Start(t, opts...)
	return &Stack{t: t, Redis: r, Env: map[string]string{
		"REDIS_URL":        r.URL(),
		"JWT_HS256_SECRET": Secret,
		"LOG_LEVEL":        "warn",
	}}
}

// NewBare returns a stack without a Redis of its own, for tests that start
// a Redis topology (Sentinel, Cluster) and pass it in env.
func NewBare(t testing.TB, env map[string]string) *Stack {
	t.Helper()
	if _, err := Binaries(); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"JWT_HS256_SECRET": Secret, "LOG_LEVEL": "warn"}
	maps.Copy(base, env)
	return &Stack{t: t, Env: base}
}

// Proc is a running service process.
type Proc struct {
	t    testing.TB
	Name string
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error
}

// StartWrite starts a write-api with extra environment.
func (s *Stack) StartWrite(extra map[string]string) *Proc { return s.start("write-api", extra) }

// StartRead starts a read-api with extra environment.
func (s *Stack) StartRead(extra map[string]string) *Proc { return s.start("read-api", extra) }

func (s *Stack) start(name string, extra map[string]string) *Proc {
	s.t.Helper()
	dir, _ := Binaries()
	port := redistest.FreePort(s.t)
	env := maps.Clone(s.Env)
	maps.Copy(env, extra)
	env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
	p := &Proc{t: s.t, Name: name, URL: "http://" + env["HTTP_ADDR"], logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(dir, name))
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("stack: start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() { p.Kill() })
	if err := waitHTTP(p.URL+"/healthz", 10*time.Second, p.done); err != nil {
		s.t.Fatalf("stack: %s not up: %v\nlogs:\n%s", name, err, p.logs.String())
	}
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill stops the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		if p.cmd.ProcessState == nil {
			return -1, p.err
		}
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(d):
		return -1, fmt.Errorf("%s still running after %s", p.Name, d)
	}
}

// Logs returns everything the process printed.
func (p *Proc) Logs() string { return p.logs.String() }

func waitHTTP(url string, within time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s: %v", url, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SubscriberToken mints a token for topics.
func (s *Stack) SubscriberToken(sub string, topics ...string) string {
	s.t.Helper()
	tok, err := devtoken.Subscriber(Secret, "notifications", sub, topics, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// PublisherToken mints a token with publish and broadcast scopes.
func (s *Stack) PublisherToken(sub string) string {
	s.t.Helper()
	tok, err := devtoken.Publisher(Secret, "notifications", sub, auth.ScopePublish+" "+auth.ScopeBroadcast, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// Post sends a JSON body to write-api and returns status, headers and body.
func Post(ctx context.Context, url, token, body string, header map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// RSS is the process's resident memory in bytes, from /proc.
func (p *Proc) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", p.PID())
}
