// Package redistest starts real redis-server processes for tests: on a
// free loopback port, in a temporary directory, stopped at cleanup.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	t        testing.TB
	Port     int
	dir      string
	args     []string
	sentinel string // sentinel.conf body; empty for a data node
	password string // requirepass; Client and the readiness check use it

	mu     sync.Mutex
	cmd    *exec.Cmd
	client *redis.Client
}

// Option adds redis-server arguments, e.g. AOF or buffer limits.
type Option func(*Server)

// WithArgs passes extra redis-server command-line arguments.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// WithAOF turns on the append-only file, fsynced every write, so a restart
// keeps everything acknowledged.
func WithAOF() Option { return WithArgs("--appendonly", "yes", "--appendfsync", "always") }

// WithPassword makes a data node require pw (requirepass) and use it
// with its master (masterauth), as a replica of a protected master must.
func WithPassword(pw string) Option {
	return func(s *Server) {
		s.password = pw
		s.args = append(s.args, "--requirepass", pw, "--masterauth", pw)
	}
}

// Start runs redis-server and waits until it answers PING. It fails the
// test, saying why, when redis-server is not installed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redistest: redis-server not found on PATH (install Debian's redis-server package): %v", err)
	}
	s := &Server{t: t, dir: t.TempDir(), Port: FreePort(t)}
	for _, o := range opts {
		o(s)
	}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the REDIS_URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns the server's go-redis client, closed at cleanup.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password})
		s.client = c
		s.t.Cleanup(func() { _ = c.Close() })
	}
	return s.client
}

// Kill stops the server at once (SIGKILL), losing whatever is not on disk.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the running server (SIGSTOP, SIGCONT, ...).
func (s *Server) Signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Restart starts the server (again) on the same port and directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	if s.sentinel != "" {
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // a restart keeps what Sentinel learned
			body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n%s", s.Port, s.dir, filepath.Join(s.dir, "redis.log"), s.sentinel)
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				s.t.Fatalf("redistest: write sentinel.conf: %v", err)
			}
		}
		args = []string{conf, "--sentinel"}
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	s.cmd = cmd
	if err := waitReady(s.Addr(), s.password, 10*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		s.t.Fatalf("redistest: redis-server on %s not ready: %v\n%s", s.Addr(), err, log)
	}
}

func waitReady(addr, password string, within time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PING answer within %s: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
