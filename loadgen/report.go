package main

import (
	"fmt"
	"io"
	"strings"
)

// Row is one figure of the bench.
type Row struct {
	Scenario string   `json:"scenario"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Notify   float64  `json:"notify"`
	Baseline *float64 `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio_to_baseline,omitempty"`
	Target   string   `json:"target,omitempty"`
	Met      *bool    `json:"met,omitempty"`
	Note     string   `json:"note,omitempty"`
}

func fptr(v float64) *float64 { return &v }
func bptr(v bool) *bool       { return &v }

func printTable(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "\n%-28s %-30s %12s %12s %9s  %-14s %s\n", "scenario", "figure", "notify", "baseline", "ratio", "target", "met")
	fmt.Fprintln(w, strings.Repeat("-", 118))
	for _, r := range rows {
		base, ratio := "—", "—"
		if r.Baseline != nil {
			base = num(*r.Baseline)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f×", *r.Ratio)
		}
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(w, "%-28s %-30s %12s %12s %9s  %-14s %s", r.Scenario, r.Metric+" ("+r.Unit+")", num(r.Notify), base, ratio, r.Target, met)
		if r.Note != "" {
			fmt.Fprintf(w, "  %s", r.Note)
		}
		fmt.Fprintln(w)
	}
}

func num(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
