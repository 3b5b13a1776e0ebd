package config_test

import (
	"testing"

	shared "notify/pkg/config"
	"notify/pkg/config/configtest"
	"notify/write-api/internal/config"
)

// TestBadValueNamesVariable: every variable write-api reads, given a bad
// value, stops it at start with a message naming the variable and value.
func TestBadValueNamesVariable(t *testing.T) {
	t.Parallel()
	cases := append([]configtest.Case{
		{Var: "HISTORY_MAX_LEN", Value: "0"},
		{Var: "HISTORY_TTL", Value: "500ms"},
		{Var: "MAX_DATA_BYTES", Value: "2097152"},
		{Var: "MAX_DATA_BYTES", Value: "0"},
		{Var: "MAX_BATCH", Value: "0"},
		{Var: "STATE_MAX_KEYS", Value: "0"},
		{Var: "STATE_MAX_KEYS", Value: "many"},
		{Var: "PUBLISH_RATE_LIMIT", Value: "-1"},
		{Var: "PUBLISH_RATE_LIMIT", Value: "NaN"},
		{Var: "PUBLISH_RATE_BURST", Value: "-1"},
	}, configtest.Both...)
	configtest.Check(t, config.Load, func(c config.Config) shared.Common { return c.Common }, cases)
}
