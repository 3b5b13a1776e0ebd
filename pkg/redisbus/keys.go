// Package redisbus is Notify's Redis layer: the atomic publish script
// (position, history, pub/sub in one step), history reads for replay, and
// the read pod's interest-based pub/sub subscriber.
package redisbus

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Keys names every key and channel. Each topic's keys and channel carry the
// topic as a hash tag, so in Redis Cluster they share one slot and the
// publish script and a sharded channel can live on one node.
type Keys struct {
	Prefix string
}

// Meta is the hash holding the topic's epoch and last sequence number.
func (k Keys) Meta(topic string) string { return k.Prefix + "{" + topic + "}:meta" }

// History is the Redis Stream of the topic's recent events, entry id 0-<seq>.
func (k Keys) History(topic string) string { return k.Prefix + "{" + topic + "}:hist" }

// Channel is the topic's pub/sub channel; it contains the topic verbatim.
func (k Keys) Channel(topic string) string { return k.Prefix + "ch:{" + topic + "}" }

// TopicOf is the inverse of Channel.
func (k Keys) TopicOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, k.Prefix+"ch:{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

// Idempotency names a publisher's idempotency record. Subject and key are
// hashed: both are caller-controlled and could carry hash tags or be long.
func (k Keys) Idempotency(subject, key string) string {
	h := sha256.Sum256([]byte(subject + "\x00" + key))
	return k.Prefix + "idem:" + hex.EncodeToString(h[:])
}
