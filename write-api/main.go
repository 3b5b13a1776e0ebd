// Command write-api accepts notifications from other services and stores
// and publishes them through Redis.
package main

import (
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	shared "notify/pkg/config"
	_ "notify/pkg/profiling" // net/http/pprof in -tags pprof builds only
	"notify/pkg/service"
	"notify/write-api/internal/app"
	"notify/write-api/internal/config"
)

func main() {
	tuneGC()
	service.Main("write-api", ":8080", config.Load,
		func(c config.Config) shared.Log { return c.Log },
		func(c config.Config, log *zap.Logger) (service.App, error) { return app.New(c, log) })
}

// tuneGC collects garbage less often unless GOGC or GOMEMLIMIT say
// otherwise. write-api's live heap is small while every request
// allocates, so at Go's default it collected many times a second and a
// publish spent a noticeable part of its CPU in the collector, for a
// higher peak RSS (docs/bench.md has the measurements). The soft limit
// keeps a burst from growing the heap past what a small pod allows.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(1000)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(192 << 20)
	}
}
