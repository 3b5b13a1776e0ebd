package deploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"notify/e2e/stack"
)

// backend is the read side that the proxy test puts behind nginx: real
// read-api pods on loopback sharing one Redis, and write-api to publish.
type backend struct {
	pods       []*pod
	streamPath string      // path and query of a stream request
	header     http.Header // sent with every stream request
	publish    func(t *testing.T, data string)
	decode     func(eventData string) string // the published data inside an event
}

// pod is one read-api instance.
type pod struct {
	addr    string     // host:port on loopback
	streams func() int // open streams on this pod
	stop    func()     // the pod goes away; its open streams end
}

// realBackend starts a redis-server, write-api and n read-api processes
// built from this checkout.
func realBackend(t *testing.T, n int) *backend {
	s := stack.New(t)
	w := s.StartWrite(nil)
	pub := s.PublisherToken("proxy-test")
	b := &backend{
		streamPath: "/v1/stream?topic=seller:42",
		header:     http.Header{"Authorization": {"Bearer " + s.SubscriberToken("seller-42", "seller:42")}},
		publish: func(t *testing.T, data string) {
			body := fmt.Sprintf(`{"topics":["seller:42"],"type":"t","data":%s}`, data)
			if status, _, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, nil); err != nil || status != http.StatusAccepted {
				t.Fatalf("publish: %d %s %v", status, resp, err)
			}
		},
		decode: func(eventData string) string {
			var env struct{ Data json.RawMessage }
			_ = json.Unmarshal([]byte(eventData), &env)
			return string(env.Data)
		},
	}
	for range n {
		p := s.StartRead(nil)
		b.pods = append(b.pods, &pod{
			addr:    strings.TrimPrefix(p.URL, "http://"),
			streams: func() int { return openStreams(t, p.URL) },
			stop:    sync.OnceFunc(p.Kill),
		})
	}
	return b
}

// openStreams reads notify_read_connections from a pod's /metrics.
func openStreams(t *testing.T, url string) int {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "notify_read_connections "); ok {
			var n float64
			_, _ = fmt.Sscan(v, &n)
			return int(n)
		}
	}
	t.Fatal("notify_read_connections missing from /metrics")
	return 0
}
