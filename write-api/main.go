// Command write-api accepts notifications from other services and stores
// and publishes them through Redis.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"notify/pkg/healthcheck"
	"notify/write-api/internal/app"
	"notify/write-api/internal/config"
)

func main() {
	if healthcheck.Requested(os.Args) {
		os.Exit(healthcheck.Run(os.Getenv("HTTP_ADDR"), ":8080"))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "write-api:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(nil)
	if err != nil {
		return err
	}
	log, err := cfg.Log.Logger("write-api")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
