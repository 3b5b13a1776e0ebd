package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"notify/pkg/devtoken"
)

// runRun is one load against services that are already running.
func runRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	writeURL := fs.String("write", "http://127.0.0.1:8080", "write-api base URL")
	readURLs := fs.String("read", "http://127.0.0.1:8081", "read-api base URLs, comma-separated (streams round-robin)")
	streams := fs.Int("streams", 1000, "streams to open")
	topics := fs.Int("topics", 100, "topics the streams spread over (0: all on broadcast)")
	rate := fs.Float64("rate", 100, "notifications/s to publish (0: flat out)")
	batch := fs.Int("batch", 1, "notifications per publish request (1: single requests)")
	conc := fs.Int("conc", 16, "concurrent publish requests")
	dur := fs.Duration("duration", 10*time.Second, "publish for this long")
	pid := fs.Int("read-pid", 0, "read-api pid for RSS and CPU from /proc (0: not measured)")
	baseline := fs.Bool("baseline", false, "the read URL is a loadgen baseline server (publish goes there too)")
	out := fs.String("json", "", "also write the results as JSON to this file")
	_ = fs.Parse(args)
	secret := os.Getenv("JWT_HS256_SECRET")
	if secret == "" && !*baseline {
		return fmt.Errorf("set JWT_HS256_SECRET: loadgen mints its own tokens")
	}
	names := []string{"broadcast"}
	if *topics > 0 {
		names = topicsOwn("lg:", *topics)
	}
	streamTopics := make([]string, *streams)
	subs := make([]int, len(names))
	for i := range streamTopics {
		streamTopics[i] = names[i%len(names)]
		subs[i%len(names)]++
	}
	sys := System{Name: "run", StreamURLs: strings.Split(*readURLs, ","), ServerPID: *pid, Secret: secret, Baseline: *baseline}
	if *baseline {
		sys.Pub = Target{URL: sys.StreamURLs[0], Baseline: true}
	} else {
		tok, err := devtoken.Publisher(secret, "notifications", "loadgen", "notifications:publish notifications:broadcast", 4*time.Hour)
		if err != nil {
			return err
		}
		sys.Pub = Target{URL: *writeURL, Token: tok}
	}
	f, or, err := openFleet(sys, streamTopics, 100, 2*time.Second)
	if err != nil {
		return err
	}
	defer f.Close()
	lr, err := runLoad("run", sys, f, PubConfig{Topics: names, Rate: *rate, Duration: *dur, Batch: *batch, Conc: *conc, Seq: *rate > 0}, subs)
	if err != nil {
		return err
	}
	rows := []Row{
		{Scenario: "open", Metric: "streams", Unit: "n", Notify: float64(or.Streams)},
		{Scenario: "open", Metric: "connect p50", Unit: "ms", Notify: or.ConnectP50ms},
		{Scenario: "open", Metric: "connect p99", Unit: "ms", Notify: or.ConnectP99ms},
		{Scenario: "load", Metric: "accepted notifications/s", Unit: "1/s", Notify: lr.AcceptedPerSec},
		{Scenario: "load", Metric: "deliveries/s", Unit: "1/s", Notify: lr.DeliveriesPerSec},
		{Scenario: "load", Metric: "delivered", Unit: "%", Notify: lr.DeliveredPct},
		{Scenario: "load", Metric: "p50", Unit: "ms", Notify: lr.P50ms},
		{Scenario: "load", Metric: "p99", Unit: "ms", Notify: lr.P99ms},
		{Scenario: "load", Metric: "p99.9", Unit: "ms", Notify: lr.P999ms},
	}
	if *pid > 0 {
		rows = append(rows, Row{Scenario: "open", Metric: "server RSS per stream", Unit: "KiB", Notify: or.RSSPerKiB},
			Row{Scenario: "load", Metric: "server CPU per 100k deliv.", Unit: "CPU-s", Notify: lr.CPUPer100k})
	}
	printTable(os.Stdout, rows)
	js, _ := json.MarshalIndent(map[string]any{"open": or, "load": lr, "pid": strconv.Itoa(*pid)}, "", "  ")
	fmt.Println(string(js))
	if *out != "" {
		return os.WriteFile(*out, js, 0o644)
	}
	return nil
}
