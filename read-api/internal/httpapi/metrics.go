package httpapi

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"notify/pkg/notification"
	"notify/read-api/internal/stream"
)

// Metrics are read-api's own series. None is labelled per topic or
// subject: their number is unbounded.
type Metrics struct {
	Connections prometheus.Gauge
	Opened      prometheus.Counter
	closed      [len(stream.EndReasons)]prometheus.Counter
	refused     [len(refuseReasons)]prometheus.Counter
	// Lag is the publish → fan-out lag, for hub.ObserveLag.
	Lag prometheus.Histogram
	// Streams is what the pod's streams count, for stream.Limits.Stats.
	Streams *stream.Stats

	historyReads *prometheus.CounterVec
}

// Why a stream request is refused before it starts, as indexes of
// refuseReasons: the pod drains, it sets up too many streams at once, the
// subject has too many streams, or Redis did not answer in time.
const (
	refusedDraining = iota
	refusedBusy
	refusedSubject
	refusedUnavailable
)

var refuseReasons = [...]string{"draining", "busy", "subject_limit", "unavailable"}

// HubStats are the hub's own counters, exported as they are read.
type HubStats interface {
	Subscribed() int64
	Received() int64
	Delivered() int64
}

// Bus is the pub/sub side as the metrics see it: its health and its
// counters of what went wrong, exported as they are read.
type Bus interface {
	Healthy() error
	ReadErrors() int64    // failed reads: a connection was lost
	Resubscribes() int64  // topics subscribed again after a reconnect
	ProbeTimeouts() int64 // self-probes not heard back
	ProbeErrors() int64   // self-probes that could not be published
}

// LagBuckets span a healthy pod (milliseconds) to a pod that has fallen
// far behind (tens of seconds).
var LagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics registers the series.
func NewMetrics(reg prometheus.Registerer, hub HubStats, bus Bus) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "notify_read_connections", Help: "Open event streams."}),
		Opened:      prometheus.NewCounter(prometheus.CounterOpts{Name: "notify_read_streams_opened_total", Help: "Event streams started (response sent)."}),
		Lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "notify_read_delivery_lag_seconds",
			Help: "Seconds from a notification's publish (its time, write-api's clock) to its fan-out to this pod's streams; once per message.", Buckets: LagBuckets}),
		Streams: &stream.Stats{},
		historyReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notify_read_history_reads_total",
			Help: "Reads of topic positions, history and state (snapshots) from Redis by streams, by kind and outcome."}, []string{"kind", "outcome"}),
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notify_read_streams_closed_total", Help: "Event streams ended, by reason."}, []string{"reason"})
	for i, r := range stream.EndReasons {
		m.closed[i] = closed.WithLabelValues(r)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notify_read_streams_refused_total",
		Help: "Stream requests refused before their stream started (503 or 429), by reason: draining, busy (too many streams being set up at once), subject_limit, unavailable (Redis)."}, []string{"reason"})
	for i, r := range refuseReasons {
		m.refused[i] = refused.WithLabelValues(r)
	}
	for _, kind := range []string{"positions", "range", "state"} {
		for _, outcome := range []string{"ok", "error"} {
			m.historyReads.WithLabelValues(kind, outcome)
		}
	}
	reg.MustRegister(m.Connections, m.Opened, closed, refused, m.Lag, m.historyReads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "notify_read_topics_subscribed", Help: "Topics this pod holds in Redis pub/sub."},
			func() float64 { return float64(hub.Subscribed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_bus_messages_total", Help: "Messages this pod read from Redis pub/sub."},
			func() float64 { return float64(hub.Received()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_deliveries_total", Help: "Events queued to streams (one per recipient stream)."},
			func() float64 { return float64(hub.Delivered()) }))
	for i, o := range stream.ResumeOutcomes {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_resumes_total",
			Help: "Streams opened with a cursor, by outcome: exact, reset (a stream.reset was sent), deferred (history unreadable at connect).", ConstLabels: prometheus.Labels{"outcome": o}},
			func() float64 { return float64(m.Streams.Resumes(i)) }))
	}
	for i, r := range stream.ResetReasons {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_resets_total",
			Help: "stream.reset events sent, by reason.", ConstLabels: prometheus.Labels{"reason": r}},
			func() float64 { return float64(m.Streams.Resets(i)) }))
	}
	m.registerBus(reg, bus)
	return m
}

func (m *Metrics) registerBus(reg prometheus.Registerer, bus Bus) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "notify_read_pubsub_healthy", Help: "1 while every Redis pub/sub connection reads without error, else 0."},
			func() float64 {
				if bus.Healthy() != nil {
					return 0
				}
				return 1
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_pubsub_read_errors_total", Help: "Failed reads on a Redis pub/sub connection (connection lost)."},
			func() float64 { return float64(bus.ReadErrors()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_pubsub_resubscribed_total", Help: "Topics subscribed again after a pub/sub reconnect; each is caught up from history."},
			func() float64 { return float64(bus.Resubscribes()) }))
	for _, p := range []struct {
		result string
		n      func() int64
	}{{"timeout", bus.ProbeTimeouts}, {"publish_error", bus.ProbeErrors}} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_pubsub_probe_failures_total",
			Help: "Pub/sub self-probes that failed: timeout (not heard back; the connection was replaced) or publish_error.", ConstLabels: prometheus.Labels{"result": p.result}},
			func() float64 { return float64(p.n()) }))
	}
}

// closed counts a stream's end.
func (m *Metrics) closedStream(reason int) { m.closed[reason].Inc() }

// CountHistory counts the reads streams make through h. Other methods of
// the History interface pass through uncounted.
func (m *Metrics) CountHistory(h stream.History) stream.History {
	return countedHistory{History: h, m: m}
}

// CountState counts the snapshot reads streams make through st (kind
// "state": one per topic snapshot, however many pages).
func (m *Metrics) CountState(st stream.StateReader) stream.StateReader {
	return countedState{StateReader: st, m: m}
}

type countedState struct {
	stream.StateReader
	m *Metrics
}

func (s countedState) Read(ctx context.Context, topic string, fn func([]notification.Message) error) (notification.Position, error) {
	pos, err := s.StateReader.Read(ctx, topic, fn)
	s.m.historyRead("state", err)
	return pos, err
}

type countedHistory struct {
	stream.History
	m *Metrics
}

func (h countedHistory) Positions(ctx context.Context, topics []string) ([]notification.Position, error) {
	p, err := h.History.Positions(ctx, topics)
	h.m.historyRead("positions", err)
	return p, err
}

func (h countedHistory) Range(ctx context.Context, q notification.RangeQuery) (notification.RangePage, error) {
	p, err := h.History.Range(ctx, q)
	h.m.historyRead("range", err)
	return p, err
}

func (m *Metrics) historyRead(kind string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.historyReads.WithLabelValues(kind, outcome).Inc()
}
