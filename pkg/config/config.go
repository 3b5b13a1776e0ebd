// Package config holds the settings both services share and loads them
// from the environment. Each service embeds Common in its own Config.
package config

import (
	"errors"
	"fmt"

	"github.com/caarlos0/env/v11"

	"notify/pkg/auth"
)

// Redis selects standalone, Sentinel or Cluster mode.
type Redis struct {
	URL              string   `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	SentinelAddrs    []string `env:"REDIS_SENTINEL_ADDRS"`
	SentinelMaster   string   `env:"REDIS_SENTINEL_MASTER"`
	Password         string   `env:"REDIS_PASSWORD"`
	SentinelPassword string   `env:"REDIS_SENTINEL_PASSWORD"`
	ClusterAddrs     []string `env:"REDIS_CLUSTER_ADDRS"`
	KeyPrefix        string   `env:"REDIS_KEY_PREFIX" envDefault:"notify:"`
}

// JWT selects the token verification key.
type JWT struct {
	HS256Secret   string `env:"JWT_HS256_SECRET"`
	PublicKeyFile string `env:"JWT_PUBLIC_KEY_FILE"`
	Audience      string `env:"JWT_AUDIENCE" envDefault:"notifications"`
	Issuer        string `env:"JWT_ISSUER"`
}

// Auth converts to the auth package's config.
func (j JWT) Auth() auth.Config {
	return auth.Config{HS256Secret: j.HS256Secret, PublicKeyFile: j.PublicKeyFile, Audience: j.Audience, Issuer: j.Issuer}
}

// Log configures zap.
type Log struct {
	Level    string `env:"LOG_LEVEL" envDefault:"info"`
	Format   string `env:"LOG_FORMAT" envDefault:"json"`
	Pod      string `env:"POD_NAME"`
	Hostname string `env:"HOSTNAME"`
}

// Common is what both services read.
type Common struct {
	Redis       Redis
	JWT         JWT
	Log         Log
	CORSOrigins []string `env:"CORS_ALLOWED_ORIGINS"`
}

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Validate checks the shared settings.
func (c Common) Validate() error {
	sentinel := len(c.Redis.SentinelAddrs) > 0 || c.Redis.SentinelMaster != ""
	if sentinel && (len(c.Redis.SentinelAddrs) == 0 || c.Redis.SentinelMaster == "") {
		return fmt.Errorf("%w: REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER go together", ErrInvalid)
	}
	if sentinel && len(c.Redis.ClusterAddrs) > 0 {
		return fmt.Errorf("%w: set either Sentinel or Cluster mode, not both", ErrInvalid)
	}
	if c.Redis.KeyPrefix == "" {
		return fmt.Errorf("%w: REDIS_KEY_PREFIX must not be empty", ErrInvalid)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return fmt.Errorf("%w: LOG_FORMAT must be json or console, got %q", ErrInvalid, c.Log.Format)
	}
	return nil
}

// Load fills cfg (a pointer to a struct with env tags) from the process
// environment, or from environ when it is not nil (tests).
func Load(cfg any, environ map[string]string) error {
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
