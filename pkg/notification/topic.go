// Package notification holds Notify's domain types: topics, notification
// envelopes, positions in a topic's history, pages of it, and their wire
// formats, with the subscription a bus hands back. Core packages declare
// their needs in these types and pkg/redisbus implements them. It imports
// only the standard library and google/uuid, so every package can use it.
package notification

import (
	"errors"
	"fmt"
)

// Broadcast is the topic every stream receives without asking for it.
const Broadcast = "broadcast"

// ErrInvalidTopic is wrapped by every topic validation failure.
var ErrInvalidTopic = errors.New("invalid topic")

// ValidateTopic reports whether s is `broadcast` or `<kind>:<id>` with
// kind [a-z][a-z0-9_-]{0,31} and id [A-Za-z0-9._~@-]{1,128}.
// Hand-written rather than a regexp: it runs for every topic of every
// request and must not allocate.
func ValidateTopic(s string) error {
	if s == Broadcast {
		return nil
	}
	colon := -1
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return fmt.Errorf("%w %q: want broadcast or <kind>:<id>", ErrInvalidTopic, clip(s))
	}
	kind, id := s[:colon], s[colon+1:]
	if len(kind) < 1 || len(kind) > 32 || kind[0] < 'a' || kind[0] > 'z' {
		return fmt.Errorf("%w %q: kind must match [a-z][a-z0-9_-]{0,31}", ErrInvalidTopic, clip(s))
	}
	for i := 1; i < len(kind); i++ {
		if c := kind[i]; !(isLower(c) || isDigit(c) || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: kind must match [a-z][a-z0-9_-]{0,31}", ErrInvalidTopic, clip(s))
		}
	}
	if err := checkID(id); err != "" {
		return fmt.Errorf("%w %q: id %s", ErrInvalidTopic, clip(s), err)
	}
	return nil
}

// ErrInvalidKey is wrapped by every state key validation failure.
var ErrInvalidKey = errors.New("invalid key")

// ValidateKey reports whether s is a valid state key: the grammar of a
// topic id, [A-Za-z0-9._~@-]{1,128}.
func ValidateKey(s string) error {
	if err := checkID(s); err != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, clip(s), err)
	}
	return nil
}

// checkID is the one rule for topic ids and state keys; it returns what
// is wrong, or "".
func checkID(id string) string {
	if len(id) < 1 || len(id) > 128 {
		return "must be 1 to 128 characters"
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == '~' || c == '@' || c == '-') {
			return "must match [A-Za-z0-9._~@-]"
		}
	}
	return ""
}

// NormalizeTopics validates topics and removes duplicates, keeping the first
// occurrence's order.
func NormalizeTopics(topics []string) ([]string, error) {
	out := make([]string, 0, len(topics))
	seen := make(map[string]struct{}, len(topics))
	for _, t := range topics {
		if err := ValidateTopic(t); err != nil {
			return nil, err
		}
		if _, dup := seen[t]; dup {
			continue
		}
		seen[t] = struct{}{}
		out = append(out, t)
	}
	return out, nil
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// clip keeps error messages short when a client sends a huge value.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
