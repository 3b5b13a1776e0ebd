package config_test

import (
	"testing"

	shared "notify/pkg/config"
	"notify/pkg/config/configtest"
	"notify/read-api/internal/config"
)

// TestBadValueNamesVariable: every variable read-api reads, given a bad
// value, stops it at start with a message naming the variable and value.
func TestBadValueNamesVariable(t *testing.T) {
	t.Parallel()
	cases := append([]configtest.Case{
		{Var: "HEARTBEAT_INTERVAL", Value: "50ms"},
		{Var: "MAX_CONNECTION_AGE", Value: "500ms"},
		{Var: "DRAIN_TIMEOUT", Value: "-1s"},
		{Var: "MAX_TOPICS_PER_CONNECTION", Value: "0"},
		{Var: "MAX_CONNECTIONS_PER_SUBJECT", Value: "-3"},
	}, configtest.Both...)
	configtest.Check(t, config.Load, func(c config.Config) shared.Common { return c.Common }, cases)
}
