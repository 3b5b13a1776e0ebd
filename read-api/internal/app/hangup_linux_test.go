package app

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"notify/pkg/devtoken"
	"notify/pkg/redistest"
	"notify/pkg/testwait"
	"notify/read-api/internal/hangup"
)

// Thousands of clients hang up at the response head: most once the head
// arrives (with a close or a reset), while the pod still registers the
// stream; some as soon as they sent the request, while their stream is
// being set up; some halfway through the request. Under
// the race detector nothing races, and the pod is back where it started:
// streams, hub registrations, hang-up watches, goroutines, descriptors.
func TestHangupsAtTheHeadLeaveNothingBehind(t *testing.T) {
	r := redistest.Start(t)
	a := startApp(t, r)
	epoll := a.hangups.(*hangup.Epoll)
	const workers, perWorker = 16, 300 // 4,800 clients
	toks := make([]string, workers)
	for w := range toks {
		var err error
		toks[w], err = devtoken.Subscriber(secret, "notifications", fmt.Sprintf("hanger-%d", w), []string{fmt.Sprintf("seller:h%d", w%4)}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: every way of hanging up once, so lazily started workers and
	// pools are part of the baseline.
	for mode := range hangupModes {
		hangUp(t, a.Addr(), toks[0], mode)
	}
	settled := func() bool { return a.Streams() == 0 && a.Hub().Members() == 0 }
	testwait.Until(t, 10*time.Second, "warm-up streams released", settled)
	baseGoroutines, baseFDs, baseWatching := runtime.NumGoroutine(), ownFDs(t, r.Port), epoll.Watching()

	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				hangUp(t, a.Addr(), toks[w], hangupMode(w+i))
			}
		})
	}
	wg.Wait()
	t.Logf("%d clients hung up in %s", workers*perWorker, time.Since(start).Round(time.Millisecond))

	testwait.Until(t, 15*time.Second, "every stream released and unregistered from the hub", settled)
	testwait.Until(t, 5*time.Second, fmt.Sprintf("hang-up watches back to %d", baseWatching), func() bool { return epoll.Watching() == baseWatching })
	testwait.Until(t, 5*time.Second, "no connection of a client left open", func() bool { return serverConns(t, a.Addr()) == 0 })
	testwait.Until(t, 5*time.Second, fmt.Sprintf("descriptors (Redis connections aside) back to %d", baseFDs), func() bool { return ownFDs(t, r.Port) <= baseFDs })
	testwait.Until(t, 5*time.Second, fmt.Sprintf("goroutines back to %d", baseGoroutines), func() bool { return runtime.NumGoroutine() <= baseGoroutines+2 })
	// The subjects' stream counts were released too: each can stream again.
	for _, tok := range toks {
		c, _ := openRaw(t, a.Addr(), tok)
		_ = c.Close()
	}
}

// hangupModes is how many ways hangUp has to leave.
const hangupModes = 4

// hangupMode picks mostly hang-ups at the head: the client leaves while
// the pod turns its connection into a stream.
func hangupMode(i int) int {
	switch i % 8 {
	case 0:
		return 0
	case 7:
		return 3
	default:
		return 1 + i%2
	}
}

// hangUp sends a stream request and leaves: 0 at once, 1 once the head
// starts to arrive, 2 the same with a reset, 3 halfway through the request.
func hangUp(t *testing.T, addr, tok string, mode int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	req := fmt.Sprintf("GET /v1/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, tok)
	if mode == 3 {
		req = req[:len(req)/2]
	}
	if _, err := c.Write([]byte(req)); err != nil {
		t.Error(err)
		return
	}
	if mode == 0 || mode == 3 {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Errorf("waiting for the head: %v", err)
	}
	if mode == 2 {
		_ = c.(*net.TCPConn).SetLinger(0)
	}
}

// ownFDs counts the process's open descriptors, leaving out its
// connections to Redis: their pools grow with load and stay.
func ownFDs(t *testing.T, redisPort int) int {
	t.Helper()
	redis := map[string]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		for _, e := range tcpEntries(t, f) {
			if e.remotePort == redisPort {
				redis["socket:["+e.inode+"]"] = true
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !redis[target] {
			n++
		}
	}
	return n
}

// serverConns counts the pod's accepted connections that still have a
// descriptor: established, or closed by the client and not yet by the pod.
// Only this process's sockets count: the table is the whole network
// namespace's, where another process's connection may use the same port
// on another loopback address.
func serverConns(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	own := map[string]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			own[target] = true
		}
	}
	n := 0
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		for _, e := range tcpEntries(t, f) {
			if e.localPort == port && own["socket:["+e.inode+"]"] && (e.state == "01" || e.state == "08") { // ESTABLISHED, CLOSE_WAIT
				n++
			}
		}
	}
	return n
}

type tcpEntry struct {
	localPort, remotePort int
	state, inode          string
}

func tcpEntries(t *testing.T, file string) []tcpEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tcpEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		out = append(out, tcpEntry{localPort: hexPort(fields[1]), remotePort: hexPort(fields[2]), state: fields[3], inode: fields[9]})
	}
	return out
}

func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.ParseInt(addr[i+1:], 16, 32)
	return int(p)
}
