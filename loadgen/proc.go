package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is a process the bench started.
type Proc struct {
	Name   string
	URL    string
	cmd    *exec.Cmd
	waited atomic.Bool // cmd.Wait returned: ProcessState holds its CPU times
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startRedis runs redis-server on a free port without persistence.
func startRedis(dir string) (*Proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxclients", "10000", "--client-output-buffer-limit", "pubsub 256mb 128mb 60")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start redis-server (install Debian's redis-server): %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			_ = cmd.Process.Kill()
			return nil, "", fmt.Errorf("redis-server did not start on %s", addr)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &Proc{Name: "redis", URL: addr, cmd: cmd}, "redis://" + addr + "/0", nil
}

// startService runs bin/<name> with env on a free port and waits for /healthz.
func startService(binDir, name string, env map[string]string) (*Proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startServiceAt(filepath.Join(binDir, name), "127.0.0.1:"+strconv.Itoa(port), env)
}

// startServiceAt runs the binary at path with env, listening on addr, and
// waits for /healthz.
func startServiceAt(path, addr string, env map[string]string) (*Proc, error) {
	name := filepath.Base(path)
	cmd := exec.Command(path)
	cmd.SysProcAttr = childAttr()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HTTP_ADDR=" + addr}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, URL: "http://" + addr, cmd: cmd}
	return p, p.waitHealthy()
}

// startBaseline re-executes this binary as the baseline SSE server.
func startBaseline() (*Proc, error) { return startSelf("baseline") }

// startFloor re-executes this binary as the floor server (floor.go).
func startFloor() (*Proc, error) { return startSelf("floor") }

// startSelf re-executes this binary as the server named by command, which
// prints its address on its first line.
func startSelf(command string) (*Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, command)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	p := &Proc{Name: command, URL: "http://" + strings.TrimSpace(line), cmd: cmd}
	return p, p.waitHealthy()
}

func (p *Proc) waitHealthy() error { return p.waitFor("/healthz") }

// waitReady waits for /readyz: the pod would now be in its Service.
func (p *Proc) waitReady() error { return p.waitFor("/readyz") }

func (p *Proc) waitFor(path string) error {
	for i := 0; ; i++ {
		resp, err := http.Get(p.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if i > 1200 {
			p.Stop()
			return fmt.Errorf("%s not healthy at %s: %v", p.Name, p.URL, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGKILL and waits: the bench's processes hold nothing worth
// a graceful drain.
func (p *Proc) Stop() {
	if p == nil || p.cmd.Process == nil || p.waited.Load() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.waited.Store(true)
}

// Terminate sends SIGTERM, as Kubernetes does to a pod it stops, and
// waits up to grace for the process to exit (then kills it, as the
// kubelet does after terminationGracePeriodSeconds). It returns how long
// the exit took; an error if the process was killed or did not exit 0.
func (p *Proc) Terminate(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("%s: SIGTERM: %w", p.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(grace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-done
		err = fmt.Errorf("%s did not exit within %v of SIGTERM: killed", p.Name, grace)
	}
	p.waited.Store(true)
	return time.Since(start), err
}

// CPU is the process's CPU-seconds so far, or in all once it has exited.
func (p *Proc) CPU() float64 {
	if p.waited.Load() {
		st := p.cmd.ProcessState
		return (st.UserTime() + st.SystemTime()).Seconds()
	}
	return cpuSeconds(p.PID())
}

// RSS is the process's resident memory; 0 once it has exited.
func (p *Proc) RSS() int64 {
	if p.waited.Load() {
		return 0
	}
	return rssBytes(p.PID())
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuSeconds is utime+stime of pid from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces
	f := strings.Fields(s[i+2:])       // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (ut + st) / 100                 // USER_HZ is 100 on Linux
}

// metric reads one un-labelled sample from a Prometheus /metrics page.
func metric(baseURL, name string) float64 {
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}
