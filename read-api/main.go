// Command read-api streams notifications to browsers over Server-Sent
// Events, each client receiving only the topics its token grants.
package main

import (
	"go.uber.org/zap"

	shared "notify/pkg/config"
	_ "notify/pkg/profiling" // net/http/pprof in -tags pprof builds only
	"notify/pkg/service"
	"notify/read-api/internal/app"
	"notify/read-api/internal/config"
)

func main() {
	service.Main("read-api", ":8081", config.Load,
		func(c config.Config) shared.Log { return c.Log },
		func(c config.Config, log *zap.Logger) (service.App, error) { return app.New(c, log) })
}
