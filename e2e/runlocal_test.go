package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"notify/e2e/stack"
	"notify/pkg/redistest"
)

const banner = "Notify is running"

// runLocal prepares scripts/run-local.sh (make run) on the given ports,
// against the test's own Redis, with the binaries e2e builds. The script
// runs in its own process group, killed at cleanup if still there.
func runLocal(t *testing.T, writePort int, readPorts ...int) *exec.Cmd {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("make run needs %s on PATH: %v", tool, err)
		}
	}
	bin, err := stack.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r := redistest.Start(t)
	var reads []string
	for _, p := range readPorts {
		reads = append(reads, strconv.Itoa(p))
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "run-local.sh"))
	cmd.Env = append(os.Environ(), "BIN="+bin, "REDIS_URL="+r.URL(),
		"WRITE_PORT="+strconv.Itoa(writePort), "READ_PORTS="+strings.Join(reads, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	return cmd
}

// answers reports whether anything accepts connections on the port.
func answers(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// With write-api's port held by another HTTP server, make run names
// write-api and why, shows its log, stops what it started, exits non-zero
// and never prints the ready banner (whose curl would reach the other
// server).
func TestMakeRunPortTaken(t *testing.T) {
	t.Parallel()
	impostor, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })}
	go func() { _ = srv.Serve(impostor) }()
	t.Cleanup(func() { _ = srv.Close() })
	taken := impostor.Addr().(*net.TCPAddr).Port
	read1, read2 := listenPort(t), listenPort(t)

	cmd := runLocal(t, taken, read1, read2)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("make run still running 90 s after its port was taken:\n%s", out.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("make run exited with %v, want a non-zero status", err)
	}
	got := out.String()
	if strings.Contains(got, banner) {
		t.Errorf("the ready banner was printed for a stack that is not answering:\n%s", got)
	}
	for _, want := range []string{
		"write-api failed",
		fmt.Sprintf("port %d is taken by another process", taken),
		"address already in use", // the end of write-api's log
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	m := regexp.MustCompile(`last lines of (\S+write-api\.log)`).FindStringSubmatch(got)
	if m == nil {
		t.Errorf("output does not point to write-api's log:\n%s", got)
	} else if _, err := os.Stat(m[1]); err != nil {
		t.Errorf("the log it points to is gone: %v", err)
	} else {
		t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(m[1])) })
	}
	for _, p := range []int{read1, read2} {
		if answers(p) {
			t.Errorf("read-api on port %d still answers after make run gave up", p)
		}
	}
}

// The happy path: the banner comes once every service answers, its export
// line gives tokens that publish and subscribe, and an interrupt stops
// everything and exits 0.
func TestMakeRunHappyPath(t *testing.T) {
	t.Parallel()
	// A free port can be taken by another process (an outgoing
	// connection's ephemeral port) between choosing it and binding it;
	// make run then says so and exits, and the test chooses again.
	var r *madeRun
	for attempt := 1; ; attempt++ {
		var retry bool
		r, retry = startMakeRun(t)
		if r != nil {
			break
		}
		if !retry || attempt == 3 {
			t.FailNow()
		}
	}
	cmd, done, output, export := r.cmd, r.done, r.output, r.export
	write, read1, read2 := r.ports[0], r.ports[1], r.ports[2]
	m := regexp.MustCompile(`^export SUB='([^']+)' PUB='([^']+)'$`).FindStringSubmatch(export)
	if m == nil {
		t.Fatalf("export line %q is not `export SUB='…' PUB='…'`", export)
	}
	sub, pub := m[1], m[2]
	if !strings.Contains(output(), banner) {
		t.Errorf("no banner before the export line:\n%s", output())
	}
	if logs := regexp.MustCompile(`Logs: (\S+) `).FindStringSubmatch(output()); logs != nil {
		t.Cleanup(func() { _ = os.RemoveAll(logs[1]) })
	}

	status, _, body, err := stack.Post(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/v1/notifications", write), pub,
		`{"topics":["seller:42"],"type":"task.assigned","data":{"taskId":7}}`, nil)
	if err != nil || status != http.StatusAccepted {
		t.Errorf("publish with $PUB: %d %v %s", status, err, body)
	}
	for _, p := range []int{read1, read2} {
		c, err := stack.Open(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/v1/stream", p), bearer(sub))
		if err != nil {
			t.Fatal(err)
		}
		if c.Resp.StatusCode != http.StatusOK {
			t.Errorf("stream with $SUB on port %d: status %d", p, c.Resp.StatusCode)
		}
		c.Close()
	}

	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("make run after Ctrl-C: %v, want exit 0\n%s", err, output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("make run still running 60 s after Ctrl-C:\n%s", output())
	}
	for _, p := range []int{write, read1, read2} {
		if answers(p) {
			t.Errorf("port %d still answers after Ctrl-C", p)
		}
	}
}

type madeRun struct {
	cmd    *exec.Cmd
	done   chan error
	output func() string
	export string
	ports  [3]int
}

// listenPort is a free port below the kernel's ephemeral range: the other
// tests' outgoing connections take ports in that range all the time, so a
// free one chosen there is often taken before make run binds it.
func listenPort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(max(low-10000, 1))
		if ln, err := net.Listen("tcp", ":"+strconv.Itoa(port)); err == nil {
			_ = ln.Close()
			return port
		}
	}
	t.Fatalf("no free port between 10000 and %d", low)
	return 0
}

// startMakeRun runs make run on free ports until it prints its export
// line. It returns nil, after logging why, if make run exited first, and
// whether that was for a port taken meanwhile by another process.
func startMakeRun(t *testing.T) (*madeRun, bool) {
	t.Helper()
	ports := [3]int{listenPort(t), listenPort(t), listenPort(t)}
	cmd := runLocal(t, ports[0], ports[1], ports[2])
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()

	var mu sync.Mutex
	var all strings.Builder
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			all.WriteString(line + "\n")
			mu.Unlock()
			if strings.HasPrefix(strings.TrimSpace(line), "export SUB=") {
				ready <- strings.TrimSpace(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	output := func() string { mu.Lock(); defer mu.Unlock(); return all.String() }

	select {
	case export := <-ready:
		return &madeRun{cmd: cmd, done: done, output: output, export: export, ports: ports}, false
	case err := <-done:
		t.Logf("make run exited (%v) before it was ready:\n%s", err, output())
		return nil, strings.Contains(output(), "is taken by another process")
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run not ready within 3 min:\n%s", output())
	}
	return nil, false
}
