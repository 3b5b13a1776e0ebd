// Package config is read-api's configuration, read from the environment
// once at start and validated there.
package config

import (
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
func Load(environ map[string]string) (Config, error) { return shared.LoadValid[Config](environ) }

// Validate rejects settings the service cannot run with.
func (c Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	switch {
	case c.HeartbeatInterval < 100*time.Millisecond:
		return shared.Invalid("HEARTBEAT_INTERVAL", c.HeartbeatInterval, "must be at least 100ms")
	case c.MaxConnectionAge < time.Second:
		return shared.Invalid("MAX_CONNECTION_AGE", c.MaxConnectionAge, "must be at least 1s")
	case c.DrainTimeout < 0:
		return shared.Invalid("DRAIN_TIMEOUT", c.DrainTimeout, "must not be negative")
	case c.MaxTopicsPerConnection < 1:
		return shared.Invalid("MAX_TOPICS_PER_CONNECTION", c.MaxTopicsPerConnection, "must be at least 1")
	case c.MaxConnectionsPerSubject < 1:
		return shared.Invalid("MAX_CONNECTIONS_PER_SUBJECT", c.MaxConnectionsPerSubject, "must be at least 1")
	}
	return shared.ListenAddr("HTTP_ADDR", c.HTTPAddr)
}
