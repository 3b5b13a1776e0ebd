// Package configtest checks that a service reports every bad setting by
// the name of its environment variable and the value it holds, as it
// starts: the services' configuration tests share it.
package configtest

import (
	"reflect"
	"strings"
	"testing"

	"notify/pkg/auth"
	"notify/pkg/config"
	"notify/pkg/redisbus"
)

// Case is one bad setting.
type Case struct {
	Var, Value string
	// Env sets other variables the case needs ("" unsets one).
	Env map[string]string
	// Hidden, when set, is a part of Value the message must not show
	// (a secret); the message must then show Var but not all of Value.
	Hidden string
}

// Both holds a bad value for each variable both services read whose
// type alone does not make a value bad (Check adds those).
var Both = []Case{
	{Var: "HTTP_ADDR", Value: "8080"},
	{Var: "REDIS_URL", Value: "ftp://cache.internal:6379"},
	{Var: "REDIS_URL", Value: "ftp://notify:hunter2@cache.internal", Hidden: "hunter2"},
	{Var: "REDIS_SENTINEL_ADDRS", Value: "sentinel-1", Env: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster"}},
	{Var: "REDIS_SENTINEL_ADDRS", Value: "sentinel-1:26379"},
	{Var: "REDIS_SENTINEL_MASTER", Value: "mymaster"},
	{Var: "REDIS_CLUSTER_ADDRS", Value: "node-1"},
	{Var: "REDIS_CLUSTER_ADDRS", Value: "node-1:6379", Env: map[string]string{"REDIS_SENTINEL_ADDRS": "s:26379", "REDIS_SENTINEL_MASTER": "m"}},
	{Var: "REDIS_KEY_PREFIX", Value: "notify{x}:"},
	{Var: "JWT_HS256_SECRET", Value: "too-short-a-secret", Hidden: "too-short-a-secret"},
	{Var: "JWT_PUBLIC_KEY_FILE", Value: "/nonexistent/notify-jwt.pem", Env: map[string]string{"JWT_HS256_SECRET": ""}},
	{Var: "LOG_LEVEL", Value: "loud"},
	{Var: "LOG_FORMAT", Value: "xml"},
	{Var: "CORS_ALLOWED_ORIGINS", Value: "app.example.com"},
	{Var: "CORS_ALLOWED_ORIGINS", Value: "https://app.example.com/"},
}

// AnyValue lists the variables no value of is wrong.
var AnyValue = []string{"REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "JWT_AUDIENCE", "JWT_ISSUER", "POD_NAME", "HOSTNAME"}

// Secret is the JWT_HS256_SECRET of the otherwise valid base environment.
const Secret = "configtest-secret-of-at-least-32-bytes"

// Check runs every case against load, the service's configuration loader,
// and then what the service builds from the configuration before it
// listens (token verifier, Redis client). Every variable of C (env tags)
// must be covered: a non-string one gets a value of the wrong type as a
// case of its own; a string one needs a case in cases or to be in
// AnyValue.
func Check[C any](t *testing.T, load func(map[string]string) (C, error), common func(C) config.Common, cases []Case) {
	t.Helper()
	base := map[string]string{"JWT_HS256_SECRET": Secret}
	if err := start(base, load, common); err != nil {
		t.Fatalf("the base environment does not start: %v", err)
	}
	covered := map[string]bool{}
	for _, v := range AnyValue {
		covered[v] = true
	}
	for _, c := range cases {
		covered[c.Var] = true
	}
	for name, typ := range vars(reflect.TypeFor[C]()) {
		if k, typed := config.KindOf(typ); typed {
			cases = append(cases, Case{Var: name, Value: k.Bad})
		} else if !covered[name] {
			t.Errorf("%s has no bad-value case and is not in AnyValue", name)
		}
	}
	for _, c := range cases {
		t.Run(c.Var+"="+c.Value, func(t *testing.T) {
			env := map[string]string{}
			for _, m := range []map[string]string{base, c.Env, {c.Var: c.Value}} {
				for k, v := range m {
					env[k] = v
				}
			}
			err := start(env, load, common)
			if err == nil {
				t.Fatalf("%s=%q: started without an error", c.Var, c.Value)
			}
			msg := err.Error()
			switch {
			case !strings.Contains(msg, c.Var):
				t.Errorf("%s=%q: message does not name the variable: %s", c.Var, c.Value, msg)
			case c.Hidden != "" && strings.Contains(msg, c.Hidden):
				t.Errorf("%s: message shows the secret %q: %s", c.Var, c.Hidden, msg)
			case c.Hidden == "" && !strings.Contains(msg, c.Value):
				t.Errorf("%s=%q: message does not show the value: %s", c.Var, c.Value, msg)
			}
		})
	}
}

// start does what a service does with its environment before it listens.
func start[C any](env map[string]string, load func(map[string]string) (C, error), common func(C) config.Common) error {
	cfg, err := load(env)
	if err != nil {
		return err
	}
	c := common(cfg)
	if _, err := auth.NewVerifier(c.JWT.Auth()); err != nil {
		return err
	}
	client, _, err := redisbus.NewClient(c.Redis)
	if err != nil {
		return err
	}
	return client.Close()
}

// vars maps each environment variable of t to its Go type.
func vars(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			out[key] = f.Type
		} else if f.Type.Kind() == reflect.Struct {
			for k, v := range vars(f.Type) {
				out[k] = v
			}
		}
	}
	return out
}
