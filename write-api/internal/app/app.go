// Package app wires write-api together: the only place that knows every
// concrete adapter.
package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/httpserver"
	"notify/pkg/redisbus"
	"notify/write-api/internal/config"
	"notify/write-api/internal/httpapi"
	"notify/write-api/internal/ingest"
)

// The implementations of what ingest declares, checked when it compiles.
var (
	_ ingest.Bus                = (*redisbus.Publisher)(nil)
	_ ingest.IdempotencyRecords = (*redisbus.IdempotencyRecords)(nil)
)

// App is a configured write-api, ready to Run.
type App struct {
	cfg    config.Config
	log    *zap.Logger
	client redis.UniversalClient
	ln     net.Listener
	srv    *http.Server
}

// New checks the configuration, connects (lazily) to Redis and listens.
func New(cfg config.Config, log *zap.Logger) (*App, error) {
	// Publishers are a few services sending one token on every request:
	// remember the verified ones (read-api does not: each browser has its
	// own token and one stream, so a cache would only cost memory).
	authCfg := cfg.JWT.Auth()
	authCfg.CacheSize = 1024
	verifier, err := auth.NewVerifier(authCfg)
	if err != nil {
		return nil, err
	}
	client, sharded, err := redisbus.NewClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	keys := redisbus.Keys{Prefix: cfg.Redis.KeyPrefix}
	reg := httpserver.NewRegistry()
	metrics := httpapi.NewMetrics(reg)
	pub := redisbus.NewPublisher(client, keys, redisbus.PublisherConfig{
		HistoryMaxLen: cfg.HistoryMaxLen, HistoryTTL: cfg.HistoryTTL, StateMaxKeys: cfg.StateMaxKeys, Sharded: sharded,
		OnceWindow: ingest.IdempotencyTTL, ScriptLatency: metrics.ScriptLatency,
	})
	service := ingest.NewService(pub, ingest.NewIdempotency(redisbus.NewIdempotencyRecords(client, keys)))

	engine := httpserver.NewEngine(log, cfg.CORSOrigins)
	httpserver.MountOps(engine, reg, func(ctx context.Context) error { return redisbus.Ping(ctx, client) })
	httpapi.New(verifier, service, ingest.Limits{MaxDataBytes: cfg.MaxDataBytes, MaxBatch: cfg.MaxBatch}, log).
		WithRateLimit(httpapi.RateLimit{PerSecond: cfg.PublishRateLimit, Burst: cfg.RateBurst()}).
		WithMetrics(metrics).
		Mount(engine)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("listen on HTTP_ADDR=%q: %w", cfg.HTTPAddr, err)
	}
	return &App{cfg: cfg, log: log, client: client, ln: ln, srv: httpserver.New(engine, log)}, nil
}

// Addr is the address the app listens on (useful with HTTP_ADDR=:0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx ends, then finishes in-flight requests.
func (a *App) Run(ctx context.Context) error {
	defer a.client.Close()
	a.log.Info("write-api listening", zap.String("addr", a.Addr()))
	return httpserver.Serve(ctx, a.srv, a.ln, 10*time.Second)
}
