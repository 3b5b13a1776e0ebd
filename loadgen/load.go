package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// System is what a load runs against: notify (read-api + write-api) or
// the baseline.
type System struct {
	Name       string
	Baseline   bool
	StreamURLs []string // read-api pods (or the baseline)
	Pub        Target
	ServerPID  int // the process whose RSS and CPU are measured
	Secret     string
}

// OpenResult describes connecting a fleet.
type OpenResult struct {
	Streams      int     `json:"streams"`
	Failed       int64   `json:"failed"`
	ConnectP50ms float64 `json:"connect_p50_ms"`
	ConnectP99ms float64 `json:"connect_p99_ms"`
	AllOpenSec   float64 `json:"all_open_s"`
	RSSPerKiB    float64 `json:"rss_per_stream_kib"`
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSAfterMiB  float64 `json:"rss_after_mib"`
}

// openFleet starts workers and connects one stream per entry of topics,
// measuring the server's RSS growth per stream after settle.
func openFleet(sys System, topics []string, conc int, settle time.Duration) (*Fleet, OpenResult, error) {
	f, err := StartFleet(len(topics))
	if err != nil {
		return nil, OpenResult{}, err
	}
	rss0 := rssBytes(sys.ServerPID)
	progress(fmt.Sprintf("[%s] opening %d streams", sys.Name, len(topics)))
	r, err := f.Open(sys.StreamURLs, sys.Baseline, sys.Secret, topics, conc)
	if err != nil {
		f.Close()
		return nil, OpenResult{}, err
	}
	time.Sleep(settle)
	rss1 := rssBytes(sys.ServerPID)
	or := OpenResult{
		Streams: int(r.Open), Failed: r.Failed,
		ConnectP50ms: ms(r.Connect.Quantile(0.5)), ConnectP99ms: ms(r.Connect.Quantile(0.99)),
		AllOpenSec:   float64(r.EstablishUS) / 1e6,
		RSSBeforeMiB: float64(rss0) / (1 << 20), RSSAfterMiB: float64(rss1) / (1 << 20),
	}
	if r.Open > 0 {
		or.RSSPerKiB = float64(rss1-rss0) / float64(r.Open) / 1024
	}
	progressDone(fmt.Sprintf("[%s] %d streams open (%d failed) in %.1fs, connect p50 %.1fms p99 %.1fms, server RSS %.0f→%.0f MiB",
		sys.Name, r.Open, r.Failed, or.AllOpenSec, or.ConnectP50ms, or.ConnectP99ms, or.RSSBeforeMiB, or.RSSAfterMiB))
	return f, or, nil
}

// LoadResult is one publish run measured at the streams and the server.
type LoadResult struct {
	Accepted         int64   `json:"accepted"`
	AcceptedPerSec   float64 `json:"accepted_per_s"`
	PubErrors        int64   `json:"publish_errors"`
	PubMissed        int64   `json:"publish_missed"`
	Expected         int64   `json:"expected_deliveries"`
	Received         int64   `json:"received"`
	DeliveredPct     float64 `json:"delivered_pct"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	P50ms            float64 `json:"p50_ms"`
	P99ms            float64 `json:"p99_ms"`
	P999ms           float64 `json:"p999_ms"`
	CPUPer100k       float64 `json:"cpu_s_per_100k"`
	CPUSeconds       float64 `json:"cpu_s"`
	Gaps             int64   `json:"gaps"`
	Dups             int64   `json:"dups"`
	Ended            int64   `json:"streams_ended"`
	LastN            []int64 `json:"-"`
}

// runLoad publishes cfg while f's streams listen; subs[i] is how many
// streams listen to cfg.Topics[i].
func runLoad(label string, sys System, f *Fleet, cfg PubConfig, subs []int) (LoadResult, error) {
	if _, err := f.Op("reset"); err != nil {
		return LoadResult{}, err
	}
	cpu0 := cpuSeconds(sys.ServerPID)
	ctx, stop := context.WithCancel(context.Background())
	go progressLoop(ctx, label, f)
	pr := Publish(context.Background(), sys.Pub, cfg)
	var expected int64
	for i, n := range pr.LastN {
		start := int64(0)
		if i < len(cfg.SeqStart) {
			start = cfg.SeqStart[i]
		}
		expected += (n - start) * int64(subs[i])
	}
	if !cfg.Seq {
		expected = 0
	}
	// Drain: wait until everything arrived or nothing moves for a second.
	var r Reply
	var err error
	last, still := int64(-1), time.Now()
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r, err = f.Op("stats"); err != nil {
			stop()
			return LoadResult{}, err
		}
		if r.Received >= expected && expected > 0 {
			break
		}
		if r.Received != last {
			last, still = r.Received, time.Now()
		} else if time.Since(still) > time.Second {
			break
		}
	}
	stop()
	cpu := cpuSeconds(sys.ServerPID) - cpu0
	lr := LoadResult{
		Accepted: pr.Accepted, AcceptedPerSec: float64(pr.Accepted) / pr.Elapsed.Seconds(),
		PubErrors: pr.Errors, PubMissed: pr.Missed, Expected: expected, Received: r.Received,
		DeliveriesPerSec: float64(r.Received) / pr.Elapsed.Seconds(),
		P50ms:            ms(r.Lat.Quantile(0.5)), P99ms: ms(r.Lat.Quantile(0.99)), P999ms: ms(r.Lat.Quantile(0.999)),
		CPUSeconds: cpu, Gaps: r.Gaps, Dups: r.Dups, Ended: r.Ended, LastN: pr.LastN,
	}
	if expected > 0 {
		lr.DeliveredPct = 100 * float64(r.Received) / float64(expected)
	}
	if r.Received > 0 {
		lr.CPUPer100k = cpu / float64(r.Received) * 1e5
	}
	progressDone(fmt.Sprintf("[%s] %.0f notif/s accepted, %.0f deliveries/s, %.2f%% delivered, p50 %.1fms p99 %.1fms p99.9 %.1fms, %.2f CPU-s/100k (errors %d, missed %d, gaps %d, dups %d)",
		label, lr.AcceptedPerSec, lr.DeliveriesPerSec, lr.DeliveredPct, lr.P50ms, lr.P99ms, lr.P999ms, lr.CPUPer100k, lr.PubErrors, lr.PubMissed, lr.Gaps, lr.Dups))
	return lr, nil
}

// progressLoop prints a live line every second until ctx ends.
func progressLoop(ctx context.Context, label string, f *Fleet) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	var prev Reply
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r, err := f.Op("stats")
			if err != nil {
				return
			}
			win := r.Lat.Sub(prev.Lat)
			progress(fmt.Sprintf("[%s] %4.0fs  streams %d  received %d (%d/s)  p99(1s) %.1fms  gaps %d",
				label, time.Since(start).Seconds(), r.Open, r.Received, r.Received-prev.Received, ms(win.Quantile(0.99)), r.Gaps))
			prev = r
		}
	}
}

var isTTY = func() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}()

// progress overwrites the live line on a terminal, or prints it otherwise.
func progress(s string) {
	if isTTY {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", s)
	} else {
		fmt.Fprintln(os.Stderr, s)
	}
}

func progressDone(s string) {
	if isTTY {
		fmt.Fprintf(os.Stderr, "\r\033[K%s\n", s)
	} else {
		fmt.Fprintln(os.Stderr, s)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
