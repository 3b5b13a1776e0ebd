package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"notify/pkg/devtoken"
)

// snapshot: streams opened at once with snapshot=true on a topic with a
// large keyed state (1,000 streams on 1,000 keys, 100 streams on 10,000
// keys): time until each stream has stream.synced, and read-api's RSS peak
// meanwhile; then Redis CPU per notification of keyed against unkeyed
// batches of 100 published through write-api.
func (b *Bench) snapshot() error {
	for _, c := range []struct{ streams, keys int }{{b.n(1000), b.n(1000)}, {b.n(100), b.n(10000)}} {
		if err := b.snapshotStorm(c.streams, c.keys); err != nil {
			return err
		}
	}
	return b.keyedCost()
}

func (b *Bench) snapshotStorm(streams, keys int) error {
	read, err := startService(b.binDir, "read-api", b.env(b.readEnv))
	if err != nil {
		return err
	}
	defer read.Stop()
	topic := fmt.Sprintf("device:snap%d", keys)
	if err := b.publishKeyed(topic, keys, 0, true); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // let the runtime settle before RSS is read
	rss0 := rssBytes(read.PID())
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := rssBytes(read.PID()); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	tr := &http.Transport{DisableKeepAlives: true, MaxIdleConnsPerHost: -1, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	times := make([]time.Duration, streams)
	errs := make(chan error, streams)
	var wg sync.WaitGroup
	var held []io.Closer
	var mu sync.Mutex
	start := time.Now()
	for i := range streams {
		wg.Go(func() {
			tok, err := devtoken.Subscriber(benchSecret, "notifications", fmt.Sprint("snap-", i), []string{topic}, time.Hour)
			if err != nil {
				errs <- err
				return
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, read.URL+"/v1/stream?snapshot=true&topic="+topic, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			held = append(held, resp.Body) // open until every stream is synced
			mu.Unlock()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("stream %d: status %d", i, resp.StatusCode)
				return
			}
			entries, err := readUntilSynced(resp.Body)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if entries != keys {
				errs <- fmt.Errorf("stream %d: %d snapshot entries, want %d", i, entries, keys)
				return
			}
			times[i] = time.Since(t0)
		})
	}
	wg.Wait()
	all := time.Since(start)
	close(stopSampling)
	<-sampled
	for _, c := range held {
		_ = c.Close()
	}
	close(errs)
	for err := range errs {
		return err
	}
	slices.Sort(times)
	p := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))].Microseconds()) / 1000 }
	sc := fmt.Sprintf("snapshot %d streams × %d keys", streams, keys)
	b.results[sc] = map[string]any{"p50_ms": p(0.5), "p99_ms": p(0.99), "all_s": all.Seconds(), "rss_before_mb": float64(rss0) / (1 << 20), "rss_peak_mb": float64(peak.Load()) / (1 << 20)}
	b.add(Row{Scenario: sc, Metric: "to stream.synced p50", Unit: "ms", Notify: p(0.5)})
	b.add(Row{Scenario: sc, Metric: "to stream.synced p99", Unit: "ms", Notify: p(0.99)})
	b.add(Row{Scenario: sc, Metric: "read-api RSS peak", Unit: "MB", Notify: float64(peak.Load()) / (1 << 20), Note: fmt.Sprintf("%.1f MB before", float64(rss0)/(1<<20))})
	return nil
}

// readUntilSynced reads a stream up to stream.synced and counts the
// snapshot events before it.
func readUntilSynced(r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return n, fmt.Errorf("before stream.synced: %w", err)
		}
		switch {
		case bytes.Equal(line, []byte("event: stream.synced\n")):
			return n, nil
		case bytes.HasPrefix(line, []byte("data: ")):
			n++
		}
	}
}

// publishKeyed publishes n notifications to topic in batches of 100, with
// keys k0..k(n-1) (or none when keyed is false); round tells them apart.
func (b *Bench) publishKeyed(topic string, n, round int, keyed bool) error {
	for at := 0; at < n; at += 100 {
		var items []map[string]any
		for i := at; i < min(at+100, n); i++ {
			it := map[string]any{"topics": []string{topic}, "type": "device.status",
				"data": map[string]any{"online": true, "battery": i % 100, "firmware": "1.4.2", "round": round}}
			if keyed {
				it["key"] = fmt.Sprintf("sensor-%05d", i)
			}
			items = append(items, it)
		}
		body, _ := json.Marshal(map[string]any{"notifications": items})
		req, _ := http.NewRequest(http.MethodPost, b.write.URL+"/v1/notifications/batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.pubToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("publish: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
	return nil
}

// keyedCost is Redis's CPU per notification for keyed and unkeyed batches
// of 100 (the same bodies, over 20 topics), interleaved, after a round of
// each that creates the topics and their keys: what is measured is a
// device updating its status. Redis's CPU time has a 10 ms resolution, so
// a round is long.
func (b *Bench) keyedCost() error {
	perRound := b.n(50000)
	cost := map[bool][]float64{}
	for round := range 10 {
		keyed := round%2 == 1
		c0 := cpuSeconds(b.redis.PID())
		for t := range 20 {
			if err := b.publishKeyed(fmt.Sprintf("device:cost%d", t), max(1, perRound/20), round, keyed); err != nil {
				return err
			}
		}
		if round >= 2 {
			cost[keyed] = append(cost[keyed], (cpuSeconds(b.redis.PID())-c0)*1e6/float64(perRound))
		}
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	k, u := med(cost[true]), med(cost[false])
	b.results["keyed publish cost"] = map[string]any{"keyed_us": cost[true], "unkeyed_us": cost[false]}
	b.add(Row{Scenario: "keyed publish, batches of 100", Metric: "Redis CPU per notification", Unit: "µs", Notify: k,
		Baseline: fptr(u), Target: "≤ 1.3× unkeyed", Met: bptr(k <= 1.3*u), Note: "baseline column: the same without key"})
	return nil
}
