package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histBuckets covers 1 µs to ~2^40 µs with about 6% resolution
// (16 linear sub-buckets per power of two).
const histBuckets = 42 * 16

// Hist is a lock-free log-linear histogram of durations in microseconds.
type Hist struct {
	b [histBuckets]atomic.Int64
}

func bucketOf(us int64) int {
	if us < 16 {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 5 // us>>e is in [16,32)
	i := (e+1)*16 + int(us>>e) - 16
	return min(i, histBuckets-1)
}

// bucketValue is the upper bound of bucket i in µs.
func bucketValue(i int) int64 {
	if i < 16 {
		return int64(i)
	}
	e := i/16 - 1
	m := int64(i%16 + 16)
	return (m+1)<<e - 1
}

// Add records d.
func (h *Hist) Add(d time.Duration) { h.b[bucketOf(d.Microseconds())].Add(1) }

// Snapshot copies the counts (sparse: index → count).
func (h *Hist) Snapshot() HistSnap {
	s := HistSnap{}
	for i := range h.b {
		if n := h.b[i].Load(); n > 0 {
			s[i] = n
		}
	}
	return s
}

// Reset zeroes the histogram.
func (h *Hist) Reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
}

// HistSnap is a histogram in transit: bucket index → count.
type HistSnap map[int]int64

// Merge adds o into s.
func (s HistSnap) Merge(o HistSnap) {
	for k, v := range o {
		s[k] += v
	}
}

// Sub returns s minus an earlier snapshot o.
func (s HistSnap) Sub(o HistSnap) HistSnap {
	r := HistSnap{}
	for k, v := range s {
		if d := v - o[k]; d > 0 {
			r[k] = d
		}
	}
	return r
}

// Count is the number of samples.
func (s HistSnap) Count() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// Quantile returns the q-quantile (0..1) as a duration; 0 if empty.
func (s HistSnap) Quantile(q float64) time.Duration {
	total := s.Count()
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen int64
	for i := 0; i < histBuckets; i++ {
		seen += s[i]
		if seen >= rank {
			return time.Duration(bucketValue(i)) * time.Microsecond
		}
	}
	return time.Duration(bucketValue(histBuckets-1)) * time.Microsecond
}
