// Package app wires read-api together: the only place that knows every
// concrete adapter.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/httpserver"
	"notify/pkg/redisbus"
	"notify/read-api/internal/config"
	"notify/read-api/internal/console"
	"notify/read-api/internal/drain"
	"notify/read-api/internal/hangup"
	"notify/read-api/internal/httpapi"
	"notify/read-api/internal/hub"
	"notify/read-api/internal/stream"
)

// App is a configured read-api, ready to Run.
type App struct {
	cfg        config.Config
	log        *zap.Logger
	client     redis.UniversalClient
	subscriber *redisbus.Subscriber
	hub        *hub.Hub
	drain      *drain.Drain
	runs       *stream.RunQueue // the streams' rounds
	hangups    hangup.Closer    // the streams' connections
	ln         net.Listener
	srv        *http.Server
}

// ErrDraining is what /readyz reports once the pod drains.
var ErrDraining = errors.New("draining")

// New checks the configuration, prepares Redis (connected lazily) and listens.
func New(cfg config.Config, log *zap.Logger) (*App, error) {
	verifier, err := auth.NewVerifier(cfg.JWT.Auth())
	if err != nil {
		return nil, err
	}
	client, sharded, err := redisbus.NewClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	keys := redisbus.Keys{Prefix: cfg.Redis.KeyPrefix}
	a := &App{cfg: cfg, log: log, client: client, drain: drain.New()}
	a.subscriber = redisbus.NewSubscriber(client, keys, sharded, log)
	a.hub = hub.New(a.subscriber, log)

	reg := httpserver.NewRegistry()
	metrics := httpapi.NewMetrics(reg, a.hub, a.subscriber)
	a.hub.ObserveLag(metrics.Lag)
	engine := httpserver.NewEngine(log, cfg.CORSOrigins)
	httpserver.MountOps(engine, reg, a.ready)
	limits := httpapi.Limits{
		MaxTopics:            cfg.MaxTopicsPerConnection,
		MaxStreamsPerSubject: cfg.MaxConnectionsPerSubject,
		MaxConnectionAge:     cfg.MaxConnectionAge,
		Stream:               stream.DefaultLimits(cfg.HeartbeatInterval),
	}
	limits.Stream.Stats = metrics.Streams
	if a.hangups, err = hangup.New(); err != nil {
		a.release()
		return nil, err
	}
	a.runs = stream.NewRunQueue()
	limits.Stream.Runs = a.runs
	history, state := metrics.CountHistory(redisbus.NewHistory(client, keys)), redisbus.NewState(client, keys)
	httpapi.New(httpapi.Deps{
		Verifier: verifier, Hub: a.hub, History: history, State: metrics.CountState(state),
		Limits: limits, Drain: a.drain, Hangups: a.hangups, Metrics: metrics, Log: log,
	}).Mount(engine)
	httpapi.NewReads(verifier, redisbus.NewHistory(client, keys), state, log).Mount(engine)
	if cfg.ConsoleEnabled {
		console.Mount(engine)
	}

	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.release()
		return nil, fmt.Errorf("listen on HTTP_ADDR=%q: %w", cfg.HTTPAddr, err)
	}
	a.srv = httpserver.New(engine, log)
	return a, nil
}

// release stops what New started besides the listener: streams that
// outlived the drain still end, on goroutines of their own, when their
// clients' writes fail.
func (a *App) release() {
	if a.runs != nil {
		a.runs.Close()
	}
	if a.hangups != nil {
		if err := a.hangups.Close(); err != nil {
			a.log.Warn("closing the hang-up watcher", zap.Error(err))
		}
	}
	_ = a.client.Close()
}

// Addr is the address the app listens on (useful with HTTP_ADDR=:0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// Hub exposes the registry to tests that check it returns to baseline.
func (a *App) Hub() *hub.Hub { return a.hub }

// Streams is how many streams are open.
func (a *App) Streams() int { return a.drain.Open() }

func (a *App) ready(ctx context.Context) error {
	if a.drain.Draining() {
		return ErrDraining
	}
	if err := a.subscriber.Healthy(); err != nil {
		return err
	}
	return redisbus.Ping(ctx, a.client)
}

// Run serves until ctx ends, then drains: /readyz turns 503, new streams
// are refused and open ones are closed gradually within DRAIN_TIMEOUT.
func (a *App) Run(ctx context.Context) error {
	busCtx, stopBus := context.WithCancel(context.Background())
	janitorCtx, stopJanitor := context.WithCancel(busCtx)
	busDone, janitorDone := make(chan struct{}), make(chan struct{})
	go func() { _ = a.subscriber.Run(busCtx, a.hub); close(busDone) }()
	go func() { a.hub.Run(janitorCtx); close(janitorDone) }()
	defer func() {
		// The hub's janitor first: its last UNSUBSCRIBE must find the
		// subscriber's connections open. The subscriber closes them when
		// it stops.
		stopJanitor()
		<-janitorDone
		stopBus()
		<-busDone
		a.release()
	}()

	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	errc := make(chan error, 1)
	go func() { errc <- httpserver.Serve(serveCtx, a.srv, a.ln, time.Second) }()
	a.log.Info("read-api listening", zap.String("addr", a.Addr()))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("draining", zap.Int("streams", a.drain.Open()), zap.Duration("within", a.cfg.DrainTimeout))
	dctx, cancel := context.WithTimeout(context.Background(), a.cfg.DrainTimeout)
	a.drain.Start(dctx, a.cfg.DrainTimeout)
	cancel()
	stopServe()
	err := <-errc
	a.log.Info("stopped")
	return err
}
