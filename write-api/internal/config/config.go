// Package config is write-api's configuration, read from the environment
// once at start and validated there.
package config

import (
	"math"
	"time"

	shared "notify/pkg/config"
)

// Config is everything write-api reads.
type Config struct {
	shared.Common
	HTTPAddr      string        `env:"HTTP_ADDR" envDefault:":8080"`
	HistoryMaxLen int64         `env:"HISTORY_MAX_LEN" envDefault:"1000"`
	HistoryTTL    time.Duration `env:"HISTORY_TTL" envDefault:"24h"`
	MaxDataBytes  int           `env:"MAX_DATA_BYTES" envDefault:"65536"`
	MaxBatch      int           `env:"MAX_BATCH" envDefault:"500"`
	StateMaxKeys  int64         `env:"STATE_MAX_KEYS" envDefault:"10000"`
	// PublishRateLimit is requests per second per publisher (token sub);
	// 0 turns the limit off. PublishRateBurst is the bucket size (0: the
	// rate rounded up, at least 1).
	PublishRateLimit float64 `env:"PUBLISH_RATE_LIMIT" envDefault:"0"`
	PublishRateBurst int     `env:"PUBLISH_RATE_BURST" envDefault:"0"`
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
	case c.HistoryMaxLen < 1:
		return shared.Invalid("HISTORY_MAX_LEN", c.HistoryMaxLen, "must be at least 1")
	case c.HistoryTTL < time.Second:
		return shared.Invalid("HISTORY_TTL", c.HistoryTTL, "must be at least 1s")
	case c.MaxDataBytes < 1 || c.MaxDataBytes > MaxBodyBytes:
		return shared.Invalid("MAX_DATA_BYTES", c.MaxDataBytes, "must be between 1 and %d", MaxBodyBytes)
	case c.MaxBatch < 1:
		return shared.Invalid("MAX_BATCH", c.MaxBatch, "must be at least 1")
	case c.StateMaxKeys < 1:
		return shared.Invalid("STATE_MAX_KEYS", c.StateMaxKeys, "must be at least 1")
	case c.PublishRateLimit < 0 || math.IsNaN(c.PublishRateLimit) || math.IsInf(c.PublishRateLimit, 0):
		return shared.Invalid("PUBLISH_RATE_LIMIT", c.PublishRateLimit, "must be a number >= 0 (0 = off)")
	case c.PublishRateBurst < 0:
		return shared.Invalid("PUBLISH_RATE_BURST", c.PublishRateBurst, "must be >= 0")
	}
	return shared.ListenAddr("HTTP_ADDR", c.HTTPAddr)
}

// RateBurst is the effective burst: PUBLISH_RATE_BURST, or the rate
// rounded up when it is 0.
func (c Config) RateBurst() int {
	if c.PublishRateBurst > 0 {
		return c.PublishRateBurst
	}
	return max(1, int(math.Ceil(c.PublishRateLimit)))
}

// MaxBodyBytes caps a request body: a larger one is answered 413.
const MaxBodyBytes = 1 << 20
