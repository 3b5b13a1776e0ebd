// Package redisbus is Notify's Redis layer: the atomic publish script
// (position, history, pub/sub in one step), history reads for replay, the
// read pod's interest-based pub/sub subscriber, and write-api's
// idempotency records.
package redisbus

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"notify/pkg/notification"
)

// Partitions is how many hash tags topics are spread over. A topic's keys
// and channel carry its partition's tag, so in Redis Cluster they share one
// slot (the publish script and SPUBLISH run on one node), and a read pod
// needs at most one sharded pub/sub connection per partition, however many
// topics it holds. Changing it renames every key: it is fixed.
const Partitions = 64

// Keys names every key and channel.
type Keys struct {
	Prefix string
}

// Partition is the topic's partition.
func (k Keys) Partition(topic string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	return int(h.Sum32() % Partitions)
}

func (k Keys) tag(part int) string { return k.Prefix + "{" + strconv.Itoa(part) + "}:" }

// Meta is the hash holding the topic's epoch and last sequence number.
func (k Keys) Meta(topic string) string { return k.tag(k.Partition(topic)) + "meta:" + topic }

// History is the Redis Stream of the topic's recent events, entry id 0-<seq>.
func (k Keys) History(topic string) string { return k.tag(k.Partition(topic)) + "hist:" + topic }

// State is the hash of the topic's keyed state: key → body of the
// notification that last set it.
func (k Keys) State(topic string) string { return k.tag(k.Partition(topic)) + "state:" + topic }

// StateOrder is the sorted set ordering the topic's state keys by the seq
// of their last update: snapshot order, and the eviction order at the key
// limit.
func (k Keys) StateOrder(topic string) string {
	return k.tag(k.Partition(topic)) + "order:" + topic
}

// Channel is the topic's pub/sub channel; it contains the topic verbatim.
func (k Keys) Channel(topic string) string { return k.tag(k.Partition(topic)) + "ch:" + topic }

// ChannelPattern matches every topic channel (for PSUBSCRIBE or PUBSUB
// CHANNELS), e.g. to count what a receive-everything subscriber would get.
func (k Keys) ChannelPattern() string { return k.Prefix + "{*}:ch:*" }

// ProbeChannel is a pod's own channel in a partition, for liveness probes.
func (k Keys) ProbeChannel(part int, pod string) string { return k.tag(part) + "probe:" + pod }

// TopicOf is the inverse of Channel.
func (k Keys) TopicOf(channel string) (string, bool) {
	part, rest, ok := k.split(channel)
	if !ok {
		return "", false
	}
	topic, ok := strings.CutPrefix(rest, "ch:")
	return topic, ok && k.Partition(topic) == part
}

// PartitionOf returns the partition of any channel these keys name.
func (k Keys) PartitionOf(channel string) (int, bool) {
	part, _, ok := k.split(channel)
	return part, ok
}

func (k Keys) split(channel string) (part int, rest string, ok bool) {
	s, ok := strings.CutPrefix(channel, k.Prefix+"{")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(s, "}:")
	if !ok {
		return 0, "", false
	}
	part, err := strconv.Atoi(num)
	return part, rest, err == nil && part >= 0 && part < Partitions
}

// onceBucket is the span of notification-id times one once hash covers.
const onceBucket = time.Hour

// Once is the hash that records which idempotent publishes of the topic's
// partition, with ids made in the same hour as id, were stored (see
// publish.lua). Keyed by the id's time, so a retry finds it in O(1) and
// each hash expires as a whole once its hour leaves the idempotency window.
func (k Keys) Once(topic, id string) string {
	var hour int64
	if t, ok := notification.IDTime(id); ok {
		hour = t.UnixMilli() / onceBucket.Milliseconds()
	}
	return k.tag(k.Partition(topic)) + "once:" + strconv.FormatInt(hour, 10)
}

// Idempotency names a publisher's idempotency record. Subject and key are
// hashed: both are caller-controlled and could carry hash tags or be long.
func (k Keys) Idempotency(subject, key string) string {
	h := sha256.Sum256([]byte(subject + "\x00" + key))
	return k.Prefix + "idem:" + hex.EncodeToString(h[:])
}
