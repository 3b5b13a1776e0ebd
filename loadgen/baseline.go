package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The baseline is the plain net/http SSE handler Notify is compared with:
// one goroutine per stream, a buffered channel per stream, one
// Write+Flush per event, a map of topic → streams under a mutex, and a
// publish endpoint taking write-api's JSON bodies. No auth, no Redis.

type baseline struct {
	mu   sync.RWMutex
	subs map[string]map[chan []byte]struct{}
	seq  int64
}

func runBaseline(args []string) error {
	b := &baseline{subs: map[string]map[chan []byte]struct{}{}}
	return runServer("baseline", args, map[string]http.HandlerFunc{
		"GET /stream": b.stream, "POST /publish": b.publish, "POST /publish/batch": b.publishBatch,
	})
}

// runServer is the body of the comparison servers' commands: it listens on
// -addr, prints the address (startSelf reads it) and serves routes and
// GET /healthz.
func runServer(name string, args []string, routes map[string]http.HandlerFunc) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args)
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, mux)
}

func (b *baseline) stream(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	ch := make(chan []byte, 64)
	b.mu.Lock()
	for _, t := range []string{topic, "broadcast"} {
		if b.subs[t] == nil {
			b.subs[t] = map[chan []byte]struct{}{}
		}
		b.subs[t][ch] = struct{}{}
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs[topic], ch)
		delete(b.subs["broadcast"], ch)
		b.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	heartbeat := time.NewTicker(20 * time.Second)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			_, _ = w.Write([]byte(":\n\n"))
			fl.Flush()
		case frame := <-ch:
			if _, err := w.Write(frame); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

type baseNotification struct {
	Topics []string        `json:"topics"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
}

func (b *baseline) publish(w http.ResponseWriter, r *http.Request) {
	var n baseNotification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.send(n)
	w.WriteHeader(http.StatusAccepted)
}

func (b *baseline) publishBatch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Notifications []baseNotification `json:"notifications"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, n := range body.Notifications {
		b.send(n)
	}
	w.WriteHeader(http.StatusAccepted)
}

// send encodes the event once and offers it to every subscriber; a full
// channel drops the event for that stream (the plain handler's choice).
func (b *baseline) send(n baseNotification) {
	b.mu.Lock()
	b.seq++
	id := b.seq
	b.mu.Unlock()
	for _, t := range n.Topics {
		frame := []byte("id: " + strconv.FormatInt(id, 10) + "\nevent: " + n.Type + "\ndata: " + string(n.Data) + "\n\n")
		b.mu.RLock()
		for ch := range b.subs[t] {
			select {
			case ch <- frame:
			default:
			}
		}
		b.mu.RUnlock()
	}
}
