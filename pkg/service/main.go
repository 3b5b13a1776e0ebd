// Package service is the common main of Notify's binaries: the container
// health-check mode, configuration, logger, signal handling.
package service

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"notify/pkg/config"
	"notify/pkg/healthcheck"
)

// App is a wired service.
type App interface {
	// Run serves until ctx ends, then shuts down gracefully.
	Run(ctx context.Context) error
}

// Main runs the named service and exits: load reads and validates its
// configuration, logOf picks the logging settings out of it, and build
// wires the app. SIGINT and SIGTERM end Run's context.
func Main[C any](name, defaultAddr string, load func(map[string]string) (C, error), logOf func(C) config.Log, build func(C, *zap.Logger) (App, error)) {
	addr := cmp.Or(os.Getenv("HTTP_ADDR"), defaultAddr)
	if healthcheck.Requested(os.Args) {
		os.Exit(healthcheck.Run(addr, defaultAddr))
	}
	if err := run(name, addr, load, logOf, build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run[C any](name, addr string, load func(map[string]string) (C, error), logOf func(C) config.Log, build func(C, *zap.Logger) (App, error)) error {
	cfg, err := load(nil)
	if err != nil {
		return err
	}
	log, err := logOf(cfg).Logger(name, addr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	app, err := build(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx)
}
