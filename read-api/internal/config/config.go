// Package config is read-api's configuration, read from the environment
// once at start and validated there.
package config

import (
	"fmt"
	"time"

	shared "notify/pkg/config"
)

// Config is everything read-api reads.
type Config struct {
	shared.Common
	HTTPAddr                 string        `env:"HTTP_ADDR" envDefault:":8081"`
	HeartbeatInterval        time.Duration `env:"HEARTBEAT_INTERVAL" envDefault:"20s"`
	MaxConnectionAge         time.Duration `env:"MAX_CONNECTION_AGE" envDefault:"1h"`
	DrainTimeout             time.Duration `env:"DRAIN_TIMEOUT" envDefault:"25s"`
	MaxTopicsPerConnection   int           `env:"MAX_TOPICS_PER_CONNECTION" envDefault:"32"`
	MaxConnectionsPerSubject int           `env:"MAX_CONNECTIONS_PER_SUBJECT" envDefault:"20"`
	ConsoleEnabled           bool          `env:"CONSOLE_ENABLED" envDefault:"false"`
}

// Load reads the configuration from environ, or the process environment
// when environ is nil, and validates it.
func Load(environ map[string]string) (Config, error) {
	var c Config
	if err := shared.Load(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate rejects settings the service cannot run with.
func (c Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	switch {
	case c.HeartbeatInterval < 100*time.Millisecond:
		return fmt.Errorf("%w: HEARTBEAT_INTERVAL must be at least 100ms", shared.ErrInvalid)
	case c.MaxConnectionAge < time.Second:
		return fmt.Errorf("%w: MAX_CONNECTION_AGE must be at least 1s", shared.ErrInvalid)
	case c.DrainTimeout < 0:
		return fmt.Errorf("%w: DRAIN_TIMEOUT must not be negative", shared.ErrInvalid)
	case c.MaxTopicsPerConnection < 1:
		return fmt.Errorf("%w: MAX_TOPICS_PER_CONNECTION must be at least 1", shared.ErrInvalid)
	case c.MaxConnectionsPerSubject < 1:
		return fmt.Errorf("%w: MAX_CONNECTIONS_PER_SUBJECT must be at least 1", shared.ErrInvalid)
	}
	return nil
}
