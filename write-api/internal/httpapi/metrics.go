package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are write-api's own series.
type Metrics struct {
	publishes *prometheus.CounterVec
	// ScriptLatency is for redisbus.PublisherConfig.
	ScriptLatency prometheus.Histogram
}

// PublishOutcomes label publish requests by how they were answered.
var PublishOutcomes = []string{"accepted", "replayed", "invalid", "denied", "rate_limited", "conflict", "unavailable", "error"}

// NewMetrics registers the series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notify_write_publishes_total",
			Help: "Publish requests (single or batch) by outcome."}, []string{"outcome"}),
		ScriptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "notify_write_redis_script_seconds",
			Help:    "Seconds per round trip of publish script calls to Redis (one per coalesced batch).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
	}
	for _, o := range PublishOutcomes {
		m.publishes.WithLabelValues(o)
	}
	reg.MustRegister(m.publishes, m.ScriptLatency)
	return m
}

// countPublish is middleware counting a publish request once answered.
func (m *Metrics) countPublish(c *gin.Context) {
	c.Next()
	m.publishes.WithLabelValues(publishOutcome(c.Writer.Status(), c.Writer.Header().Get("Idempotent-Replayed") == "true")).Inc()
}

func publishOutcome(status int, replayed bool) string {
	switch {
	case status == http.StatusAccepted && replayed:
		return "replayed"
	case status < 300:
		return "accepted"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusConflict:
		return "conflict"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status < 500:
		return "invalid"
	}
	return "error"
}
