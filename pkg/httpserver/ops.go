package httpserver

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"notify/pkg/problem"
)

// NewRegistry returns a Prometheus registry with Go and process metrics.
// Each service instance has its own, so tests can run several in one process.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MountOps adds /healthz (the process answers), /readyz (ready reports no
// error within 2 s) and /metrics, which includes notify_ready: what
// /readyz would answer, checked at each scrape.
func MountOps(r *gin.Engine, reg *prometheus.Registry, ready func(context.Context) error) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "notify_ready", Help: "1 while /readyz would answer 200 (Redis reachable, not draining), else 0."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if ready(ctx) != nil {
				return 0
			}
			return 1
		}))
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			problem.Write(c.Writer, problem.New(problem.Unavailable, "not ready: %v", err))
			return
		}
		c.String(http.StatusOK, "ready\n")
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
}
