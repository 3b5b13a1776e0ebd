package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The field report's fleet: 15 NestJS pods of about 800 MB held 90,000
// seller streams.
const (
	fieldRSSMiB    = 12 * 1024
	fieldStreams   = 90000
	rssTargetMiB   = 1024
	steadyP99MS    = 100
	rolloutP99MS   = 2000
	backMarginSecs = 5
)

// table turns the run's figures into the report's rows.
func (b *fleetBench) table(open Reply, openSec float64, rss, peakRSS int64, before, after map[string]int, backs []PodBack,
	ver Reply, phases map[string]any, deliveries int64, readCPU, redisCPU, wall float64, pubErrs, retried int64, snap bool, rerr error) {
	c := b.cfg
	sc := fmt.Sprintf("fleet %d streams, %d pods", c.streams, c.pods)
	add := func(r Row) {
		if r.Baseline != nil && *r.Baseline != 0 {
			r.Ratio = fptr(r.Notify / *r.Baseline)
		}
		b.rows = append(b.rows, r)
	}
	var met *bool // the pods' own few MiB each make the total meaningless below full size
	if c.scale == 1 {
		met = bptr(mib(rss) <= rssTargetMiB)
	}
	add(Row{Scenario: sc, Metric: "read-api RSS, all pods", Unit: "MiB", Notify: mib(rss), Baseline: fptr(fieldRSSMiB * c.scale),
		Target: "≤ 1 GiB at scale 1", Met: met,
		Note: fmt.Sprintf("after opening; peak during the run %.0f MiB; baseline column: the field report's 15 NestJS pods (12 GB for 90,000)", mib(peakRSS))})
	add(Row{Scenario: sc, Metric: "read-api RSS per stream", Unit: "KiB", Notify: float64(rss) / 1024 / float64(max(open.Open, 1)),
		Baseline: fptr(float64(fieldRSSMiB) * 1024 / fieldStreams)})
	add(Row{Scenario: sc, Metric: "all streams connected", Unit: "s", Notify: openSec,
		Note: fmt.Sprintf("%d open, %d failed; connect p50 %.1f ms, p99 %.1f ms", open.Open, open.Failed, ms(open.Connect.Quantile(0.5)), ms(open.Connect.Quantile(0.99)))})
	for _, ph := range []struct{ name, label string }{{"steady", "steady"}, {"rollout", "during rollout"}} {
		f := phases[ph.name].(map[string]any)
		all := f["all"].(map[string]float64)
		tg, bc := f["targeted"].(map[string]float64), f["broadcast"].(map[string]float64)
		limit := map[string]float64{"steady": steadyP99MS, "rollout": rolloutP99MS}[ph.name]
		add(Row{Scenario: sc, Metric: "p99 publish→receive, " + ph.label, Unit: "ms", Notify: all["p99_ms"],
			Target: fmt.Sprintf("≤ %.0f ms", limit), Met: bptr(all["p99_ms"] <= limit),
			Note: fmt.Sprintf("%.0f s, %.0f deliveries; targeted p99 %.1f ms, broadcast p99 %.1f ms", f["seconds"], all["n"], tg["p99_ms"], bc["p99_ms"])})
		add(Row{Scenario: sc, Metric: "p50, " + ph.label, Unit: "ms", Notify: all["p50_ms"],
			Note: fmt.Sprintf("targeted %.1f ms, broadcast %.1f ms", tg["p50_ms"], bc["p50_ms"])})
		add(Row{Scenario: sc, Metric: "p99.9, " + ph.label, Unit: "ms", Notify: all["p999_ms"],
			Note: fmt.Sprintf("targeted %.1f ms, broadcast %.1f ms; max %.0f ms", tg["p999_ms"], bc["p999_ms"], all["max_ms"])})
	}
	add(Row{Scenario: sc, Metric: "notifications lost", Unit: "n", Notify: float64(ver.Lost), Target: "0", Met: bptr(ver.Lost == 0 && pubErrs == 0 && ver.Failed == 0),
		Note: fmt.Sprintf("checked per stream and topic against the last accepted n; %d deliveries; %d streams missing some; %d publish errors, %d requests retried with their Idempotency-Key; %d streams failed", deliveries, ver.StreamsLost, pubErrs, retried, ver.Failed)})
	add(Row{Scenario: sc, Metric: "notifications duplicated", Unit: "n", Notify: float64(ver.Dups), Target: "0", Met: bptr(ver.Dups == 0 && ver.Unaccounted == 0),
		Note: fmt.Sprintf("%d stream.reset; %d beyond the last accepted", ver.Resets, ver.Unaccounted)})
	backTarget := c.drain.Seconds() + backMarginSecs
	worst, per := 0.0, []string{}
	ok := rerr == nil && len(backs) == c.pods
	for _, pb := range backs {
		worst = max(worst, pb.AllBackS)
		per = append(per, fmt.Sprintf("%.1f", pb.AllBackS))
		ok = ok && pb.Back == pb.Streams && pb.ExitOK
	}
	note := "per pod " + strings.Join(per, ", ") + " s"
	if rerr != nil {
		note += "; " + rerr.Error()
	}
	add(Row{Scenario: sc, Metric: "streams back after SIGTERM, worst pod", Unit: "s", Notify: worst,
		Target: fmt.Sprintf("≤ %.0f s", backTarget), Met: bptr(ok && worst <= backTarget), Note: note})
	failed, classes := failureNote(ver.Failures)
	add(Row{Scenario: sc, Metric: "failed connect attempts", Unit: "n", Notify: float64(failed),
		Note: "by class: " + classes + fmt.Sprintf("; %d reconnects", ver.Reconnects)})
	add(Row{Scenario: sc, Metric: "streams per pod, before rollout", Unit: "n", Notify: float64(maxCount(before)), Note: "max; " + counts(before)})
	add(Row{Scenario: sc, Metric: "streams per pod, after rollout", Unit: "n", Notify: float64(maxCount(after)), Note: "max; " + counts(after)})
	steady, roll := phases["steady"].(map[string]any), phases["rollout"].(map[string]any)
	add(Row{Scenario: sc, Metric: "read-api CPU per 100k deliveries", Unit: "CPU-s", Notify: readCPU / float64(max(deliveries, 1)) * 1e5,
		Note: fmt.Sprintf("all pods, whole run (%.0f CPU-s); steady %.2f, during rollout %.2f", readCPU, steady["read_cpu_s_per_100k"], roll["read_cpu_s_per_100k"])})
	add(Row{Scenario: sc, Metric: "Redis CPU", Unit: "% core", Notify: 100 * redisCPU / wall,
		Note: fmt.Sprintf("%.1f CPU-s over %.0f s; steady %.1f %%, during rollout %.1f %%", redisCPU, wall,
			100*steady["redis_cpu_s"].(float64)/steady["seconds"].(float64), 100*roll["redis_cpu_s"].(float64)/roll["seconds"].(float64))})
	if snap {
		add(Row{Scenario: sc, Metric: "snapshots not as they should be", Unit: "n", Notify: float64(ver.SnapBad), Target: "0", Met: bptr(ver.SnapBad == 0),
			Note: fmt.Sprintf("%d stream.synced seen; a fresh stream must get all %d keys, a resumed one none", ver.Snapshots, c.snapKeys)})
	}
}

func maxCount(m map[string]int) int {
	v := 0
	for _, n := range m {
		v = max(v, n)
	}
	return v
}

// counts lists pod: streams in pod order.
func counts(m map[string]int) string {
	ids := make([]int, 0, len(m))
	for k := range m {
		id, _ := strconv.Atoi(k)
		ids = append(ids, id)
	}
	sort.Ints(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("pod %d: %d", id, m[strconv.Itoa(id)])
	}
	return strings.Join(parts, ", ")
}
