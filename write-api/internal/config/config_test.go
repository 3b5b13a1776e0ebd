package config

import (
	"strings"
	"testing"
)

// STATE_MAX_KEYS defaults to 10000; a value below 1 fails
// at start with a message naming the variable.
func TestStateMaxKeys(t *testing.T) {
	base := map[string]string{"JWT_HS256_SECRET": strings.Repeat("s", 32)}
	c, err := Load(base)
	if err != nil || c.StateMaxKeys != 10000 {
		t.Fatalf("default: %d %v", c.StateMaxKeys, err)
	}
	for _, v := range []string{"0", "-1"} {
		env := map[string]string{"JWT_HS256_SECRET": base["JWT_HS256_SECRET"], "STATE_MAX_KEYS": v}
		if _, err := Load(env); err == nil || !strings.Contains(err.Error(), "STATE_MAX_KEYS") {
			t.Errorf("STATE_MAX_KEYS=%s: %v, want an error naming STATE_MAX_KEYS", v, err)
		}
	}
}
