package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The floor is the least work a server can do per delivery with one TCP
// connection per stream: no goroutine, buffer, timer or per-stream id,
// only one write(2) of one shared frame per stream and message, issued
// back to back from one thread per core. Nothing a real server does can
// cost less, so its CPU per delivery and its broadcast latency bound what
// any SSE server, Notify included, can reach on this machine.

type floor struct {
	mu   sync.Mutex // orders publishes and guards subs
	subs map[string][]floorStream
	seq  int64
}

type floorStream struct {
	conn net.Conn // kept so the descriptor stays open
	fd   int
}

func runFloor(args []string) error {
	f := &floor{subs: map[string][]floorStream{}}
	return runServer("floor", args, map[string]http.HandlerFunc{"GET /stream": f.stream, "POST /publish": f.publish})
}

// stream takes the connection out of net/http and registers its
// descriptor; no goroutine stays behind.
func (f *floor) stream(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fd, err := rawFD(conn)
	if err == nil {
		_, err = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"))
	}
	if err != nil {
		_ = conn.Close()
		return
	}
	s := floorStream{conn: conn, fd: fd}
	f.mu.Lock()
	f.subs[topic] = append(f.subs[topic], s)
	if topic != "broadcast" {
		f.subs["broadcast"] = append(f.subs["broadcast"], s)
	}
	f.mu.Unlock()
}

func rawFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("floor: %T has no descriptor", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// publish writes the frame to every stream of the topics before it answers.
func (f *floor) publish(w http.ResponseWriter, r *http.Request) {
	var n baseNotification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	frame := []byte("id: " + strconv.FormatInt(f.seq, 10) + "\nevent: " + n.Type + "\ndata: " + string(n.Data) + "\n\n")
	for _, t := range n.Topics {
		f.fanOut(f.subs[t], frame)
	}
	w.WriteHeader(http.StatusAccepted)
}

// fanOut splits streams over one goroutine per core, each issuing its
// writes back to back on a locked thread.
func (f *floor) fanOut(streams []floorStream, frame []byte) {
	parts := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for p := range parts {
		chunk := streams[p*len(streams)/parts : (p+1)*len(streams)/parts]
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for _, s := range chunk {
				// A failed or short write shows as a missing delivery.
				_, _ = unix.Write(s.fd, frame)
			}
		})
	}
	wg.Wait()
}
