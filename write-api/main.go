// Command write-api accepts notifications from other services and stores
// and publishes them through Redis.
package main

import (
	"go.uber.org/zap"

	shared "notify/pkg/config"
	_ "notify/pkg/profiling" // net/http/pprof in -tags pprof builds only
	"notify/pkg/service"
	"notify/write-api/internal/app"
	"notify/write-api/internal/config"
)

func main() {
	service.Main("write-api", ":8080", config.Load,
		func(c config.Config) shared.Log { return c.Log },
		func(c config.Config, log *zap.Logger) (service.App, error) { return app.New(c, log) })
}
