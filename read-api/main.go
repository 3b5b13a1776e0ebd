// Command read-api streams notifications to browsers over Server-Sent
// Events, each client receiving only the topics its token grants.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"notify/pkg/healthcheck"
	"notify/read-api/internal/app"
	"notify/read-api/internal/config"
)

func main() {
	if healthcheck.Requested(os.Args) {
		os.Exit(healthcheck.Run(os.Getenv("HTTP_ADDR"), ":8081"))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "read-api:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(nil)
	if err != nil {
		return err
	}
	log, err := cfg.Log.Logger("read-api")
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
