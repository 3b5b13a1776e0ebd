package httpapi

import "github.com/prometheus/client_golang/prometheus"

// Metrics are read-api's own series. None is labelled per topic or
// subject: their number is unbounded.
type Metrics struct {
	Connections prometheus.Gauge
	SlowClosed  prometheus.Counter
}

// NewMetrics registers the series; subscribed reports the topics the pod
// holds in Redis.
func NewMetrics(reg prometheus.Registerer, subscribed func() float64) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "notify_read_connections", Help: "Open event streams."}),
		SlowClosed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "notify_read_slow_closed_total", Help: "Streams closed because the client did not keep up."}),
	}
	reg.MustRegister(m.Connections, m.SlowClosed, prometheus.NewGaugeFunc(
		prometheus.GaugeOpts{Name: "notify_read_topics_subscribed", Help: "Topics this pod holds in Redis pub/sub."}, subscribed))
	return m
}
