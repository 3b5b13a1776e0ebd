package app

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"notify/pkg/devtoken"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
)

// A client that leaves while its stream is being set up (Redis is slow to
// confirm the subscription) is not answered 503 nor logged as a failure:
// the connection closes with nothing sent, and the access log says so.
func TestClientGoneDuringSetupIsNotAFailure(t *testing.T) {
	r := redistest.Start(t)
	core, logs := observer.New(zap.InfoLevel)
	a := startAppWithLog(t, r, zap.New(core))
	tok, err := devtoken.Subscriber(secret, "notifications", "leaver", []string{"seller:gone"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	r.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			r.Signal(syscall.SIGCONT)
		}
	}()
	fmt.Fprintf(c, "GET /v1/stream?topic=seller:gone HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	testwait.Until(t, 5*time.Second, "the stream waits for its subscription", func() bool { return a.Hub().Members() > 0 })
	_ = c.(*net.TCPConn).CloseWrite() // the client leaves; it can still read what it is sent
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading after leaving: %v (got %q)", err, got)
	}
	if len(got) > 0 {
		t.Fatalf("a client gone during setup was answered:\n%s", got)
	}
	r.Signal(syscall.SIGCONT)
	stopped = false

	entry := accessLogEntry(t, logs, "/v1/stream")
	if f := entry.ContextMap(); f["status"] != int64(0) || f["outcome"] == nil {
		t.Errorf("access log: %v, want status 0 and what happened", f)
	}
	for _, e := range logs.All() { // Redis stalled: its own warnings are right, a refusal is not
		if e.Level >= zapcore.WarnLevel && e.Message == "stream refused" {
			t.Errorf("logged %s %q %v for a client that left", e.Level, e.Message, e.ContextMap())
		}
	}
	testwait.Until(t, 5*time.Second, "the stream's registration released", func() bool { return a.Hub().Members() == 0 && a.Streams() == 0 })
}

// The access log says what a stream's client got: a stream refused after
// the connection was taken (a pipelined request) sent nothing, not 200.
func TestAccessLogTellsWhatAStreamGot(t *testing.T) {
	r := redistest.Start(t)
	core, logs := observer.New(zap.InfoLevel)
	a := startAppWithLog(t, r, zap.New(core))
	tok, err := devtoken.Subscriber(secret, "notifications", "logged", []string{"seller:log"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fmt.Sprintf("GET /v1/stream?topic=seller:log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	_, _ = io.WriteString(c, req+req) // pipelined: no SSE client does that
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || len(got) > 0 {
		t.Fatalf("pipelined stream request: read %q, %v; want the connection closed with nothing sent", got, err)
	}
	f := accessLogEntry(t, logs, "/v1/stream").ContextMap()
	if f["status"] != int64(0) || f["bytes"] != int64(0) || f["outcome"] == nil {
		t.Errorf("access log of a refused stream: %v, want status 0, bytes 0 and why", f)
	}

	logs.TakeAll()
	conn, _ := openRaw(t, a.Addr(), tok)
	defer conn.Close()
	f = accessLogEntry(t, logs, "/v1/stream").ContextMap()
	if f["status"] != int64(200) || f["bytes"].(int64) <= 0 || f["outcome"] != "streaming" {
		t.Errorf("access log of a stream: %v, want status 200, the bytes of its head and outcome streaming", f)
	}
}

// accessLogEntry waits for the access log line of path.
func accessLogEntry(t *testing.T, logs *observer.ObservedLogs, path string) observer.LoggedEntry {
	t.Helper()
	var found []observer.LoggedEntry
	testwait.Until(t, 5*time.Second, "the access log line of "+path, func() bool {
		found = logs.FilterMessage("request").FilterField(zap.String("path", path)).All()
		return len(found) > 0
	})
	return found[0]
}
