package config

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Two replicas of one service on one host log different pod fields: the
// pod's name where the platform gives one, else the listen address.
func TestLoggerNamesTheInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  Log
		addr string
		want string
	}{
		{"POD_NAME", Log{Pod: "read-api-7d9f-abcde", Hostname: "host"}, ":8081", "read-api-7d9f-abcde"},
		{"HOSTNAME", Log{Hostname: "read-api-0"}, ":8081", "read-api-0"},
		{"listen address, first replica", Log{}, ":8081", ":8081"},
		{"listen address, second replica", Log{}, ":8082", ":8082"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.InfoLevel)
			tc.log.Level, tc.log.Format = "info", "json"
			log, err := tc.log.Logger("read-api", tc.addr, zap.WrapCore(func(zapcore.Core) zapcore.Core { return core }))
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d entries, want 1", len(entries))
			}
			f := entries[0].ContextMap()
			if f["service"] != "read-api" || f["pod"] != tc.want {
				t.Errorf("fields %v, want service read-api and pod %q", f, tc.want)
			}
		})
	}
}
