package httpapi

import "github.com/prometheus/client_golang/prometheus"

// Metrics are read-api's own series. None is labelled per topic or
// subject: their number is unbounded.
type Metrics struct {
	Connections prometheus.Gauge
	SlowClosed  prometheus.Counter
}

// HubStats are the hub's own counters, exported as they are read.
type HubStats interface {
	Subscribed() int64
	Received() int64
	Delivered() int64
}

// NewMetrics registers the series.
func NewMetrics(reg prometheus.Registerer, hub HubStats) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "notify_read_connections", Help: "Open event streams."}),
		SlowClosed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "notify_read_slow_closed_total", Help: "Streams closed because the client did not keep up."}),
	}
	reg.MustRegister(m.Connections, m.SlowClosed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "notify_read_topics_subscribed", Help: "Topics this pod holds in Redis pub/sub."},
			func() float64 { return float64(hub.Subscribed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_bus_messages_total", Help: "Messages this pod read from Redis pub/sub."},
			func() float64 { return float64(hub.Received()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "notify_read_deliveries_total", Help: "Events queued to streams (one per recipient stream)."},
			func() float64 { return float64(hub.Delivered()) }))
	return m
}
