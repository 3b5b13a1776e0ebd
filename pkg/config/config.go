// Package config holds the settings both services share and loads them
// from the environment. Each service embeds Common in its own Config.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

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

// Invalid is the error for a bad setting: it names the environment
// variable and the value it holds, never the Go field behind it, so an
// operator can fix the deployment from the message alone.
func Invalid(name string, value any, format string, args ...any) error {
	return fmt.Errorf("%w: %s=%q: %s", ErrInvalid, name, fmt.Sprint(value), fmt.Sprintf(format, args...))
}

// Validate checks the shared settings.
func (c Common) Validate() error {
	r := c.Redis
	sentinel := len(r.SentinelAddrs) > 0 || r.SentinelMaster != ""
	switch {
	case sentinel && len(r.SentinelAddrs) == 0:
		return Invalid("REDIS_SENTINEL_MASTER", r.SentinelMaster, "needs REDIS_SENTINEL_ADDRS too")
	case sentinel && r.SentinelMaster == "":
		return Invalid("REDIS_SENTINEL_ADDRS", strings.Join(r.SentinelAddrs, ","), "needs REDIS_SENTINEL_MASTER too")
	case sentinel && len(r.ClusterAddrs) > 0:
		return Invalid("REDIS_CLUSTER_ADDRS", strings.Join(r.ClusterAddrs, ","), "set either Sentinel (REDIS_SENTINEL_ADDRS) or Cluster mode, not both")
	case strings.ContainsAny(r.KeyPrefix, "{}"):
		return Invalid("REDIS_KEY_PREFIX", r.KeyPrefix, "must not contain { or }: the services put a Redis Cluster hash tag after it")
	}
	if err := hostPorts("REDIS_SENTINEL_ADDRS", r.SentinelAddrs); err != nil {
		return err
	}
	if err := hostPorts("REDIS_CLUSTER_ADDRS", r.ClusterAddrs); err != nil {
		return err
	}
	for _, o := range c.CORSOrigins {
		if err := origin(o); err != nil {
			return Invalid("CORS_ALLOWED_ORIGINS", strings.Join(c.CORSOrigins, ","), "%q %v", o, err)
		}
	}
	if _, err := c.Log.level(); err != nil {
		return err
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return Invalid("LOG_FORMAT", c.Log.Format, "must be json or console")
	}
	return nil
}

// ListenAddr checks an HTTP_ADDR-style setting: host:port, host optional.
func ListenAddr(name, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return Invalid(name, addr, "must be [host]:port, like :8080")
	}
	return nil
}

func hostPorts(name string, addrs []string) error {
	for _, a := range addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return Invalid(name, strings.Join(addrs, ","), "%q is not host:port", a)
		}
	}
	return nil
}

// origin accepts what a browser sends as Origin: "*" for any, or
// scheme://host[:port] with nothing after it (a trailing slash never
// matches).
func origin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("is not * or an origin like https://app.example.com")
	}
	return nil
}

// Load fills cfg (a pointer to a struct with env tags) from the process
// environment, or from environ when it is not nil (tests). A value that
// does not parse is reported by its variable's name.
func Load(cfg any, environ map[string]string) error {
	if environ == nil {
		environ = env.ToMap(os.Environ())
	}
	err := env.ParseWithOptions(cfg, env.Options{Environment: environ})
	var agg env.AggregateError
	if err == nil || !errors.As(err, &agg) {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil
	}
	keys := envKeys(reflect.TypeOf(cfg).Elem(), map[string][]string{})
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) || len(keys[pe.Name]) == 0 {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, e))
			continue
		}
		for _, key := range keys[pe.Name] {
			if v, set := environ[key]; set {
				k, _ := KindOf(pe.Type)
				errs = append(errs, Invalid(key, v, "must be %s", k.Want))
			}
		}
	}
	return errors.Join(errs...)
}

// envKeys maps the Go field names of t (and of the structs it holds) to
// their environment variables: env reports a parse error by field name.
func envKeys(t reflect.Type, keys map[string][]string) map[string][]string {
	for i := range t.NumField() {
		f := t.Field(i)
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			keys[f.Name] = append(keys[f.Name], key)
		} else if f.Type.Kind() == reflect.Struct {
			envKeys(f.Type, keys)
		}
	}
	return keys
}

// Kind is what a variable of one family of Go types must hold, and a
// value it does not accept (for tests).
type Kind struct{ Want, Bad string }

// KindOf is the Kind of variables of type t; false for strings and lists,
// which any text parses as.
func KindOf(t reflect.Type) (Kind, bool) {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return Kind{"a duration like 20s, 1m30s or 1h", "often"}, true
	case t.Kind() == reflect.Bool:
		return Kind{"true or false", "maybe"}, true
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return Kind{"a whole number", "many"}, true
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return Kind{"a number", "lots"}, true
	}
	return Kind{"a valid " + t.String(), ""}, false
}

// LoadValid loads a service's configuration (see Load) and validates it.
func LoadValid[C interface{ Validate() error }](environ map[string]string) (C, error) {
	var c C
	if err := Load(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}
