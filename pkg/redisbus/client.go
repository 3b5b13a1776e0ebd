package redisbus

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/config"
)

// Timeouts are short so that a Redis outage turns into a fast 503 rather
// than a hanging request.
const (
	dialTimeout = 1 * time.Second
	ioTimeout   = 1 * time.Second
	poolTimeout = 1 * time.Second
)

// NewClient connects in the mode the configuration selects. sharded is true
// for Redis Cluster, where pub/sub uses sharded channels.
func NewClient(cfg config.Redis) (client redis.UniversalClient, sharded bool, err error) {
	switch {
	case len(cfg.ClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.ClusterAddrs, Password: cfg.Password,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, PoolTimeout: poolTimeout,
		}), true, nil
	case len(cfg.SentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: cfg.SentinelAddrs,
			Password: cfg.Password, SentinelPassword: cfg.SentinelPassword,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, PoolTimeout: poolTimeout,
		}), false, nil
	default:
		opt, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, false, config.Invalid("REDIS_URL", redacted(cfg.URL), "%v", err)
		}
		if cfg.Password != "" && opt.Password == "" {
			opt.Password = cfg.Password
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = dialTimeout, ioTimeout, ioTimeout, poolTimeout
		return redis.NewClient(opt), false, nil
	}
}

// Ping reports whether Redis answers within the context's deadline.
func Ping(ctx context.Context, client redis.UniversalClient) error {
	if err := client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbus: ping: %w", err)
	}
	return nil
}

// redacted hides the password a Redis URL may carry, so that an error
// naming the URL can be logged.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil:
		return u.Redacted()
	case strings.Contains(raw, "@"):
		return "(a URL with credentials that does not parse)"
	default:
		return raw
	}
}
