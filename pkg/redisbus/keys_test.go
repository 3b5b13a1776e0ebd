package redisbus

import (
	"fmt"
	"testing"
	"time"

	"notify/pkg/notification"
)

func TestKeysShareATagAndRoundTrip(t *testing.T) {
	t.Parallel()
	k := Keys{Prefix: "notify:"}
	for _, topic := range []string{"seller:42", "device:7f3a-01", "broadcast", "fleet:a}b{"} {
		ch := k.Channel(topic)
		if got, ok := k.TopicOf(ch); !ok || got != topic {
			t.Errorf("TopicOf(%q) = %q, %v", ch, got, ok)
		}
		tag := k.tag(k.Partition(topic))
		for _, key := range []string{k.Meta(topic), k.History(topic), ch, k.Once(topic, "0192f0c4-1a2b-7c3d-8e4f-0123456789ab")} {
			if key[:len(tag)] != tag {
				t.Errorf("%q does not start with the topic's tag %q", key, tag)
			}
		}
	}
	if _, ok := k.TopicOf(k.ProbeChannel(3, "pod")); ok {
		t.Error("a probe channel parsed as a topic")
	}
	if _, ok := k.TopicOf("notify:{999}:ch:seller:1"); ok {
		t.Error("an out-of-range partition parsed")
	}
}

// A once hash covers one hour of id times: ids made an hour apart land in
// different hashes, ids of one hour in the same one.
func TestOnceKeyByHourOfTheID(t *testing.T) {
	t.Parallel()
	k := Keys{Prefix: "notify:"}
	id := func(ms int64) string { return fmt.Sprintf("%08x-%04x-7000-8000-000000000000", ms>>16, ms&0xffff) }
	const hour = int64(time.Hour / time.Millisecond)
	base := 1_800_000 * hour
	if a, b := k.Once("seller:1", id(base)), k.Once("seller:1", id(base+hour-1)); a != b {
		t.Errorf("one hour, two hashes: %q %q", a, b)
	}
	if a, b := k.Once("seller:1", id(base)), k.Once("seller:1", id(base+hour)); a == b {
		t.Errorf("two hours, one hash: %q", a)
	}
	if got, ok := notification.IDTime(id(base)); !ok || got.UnixMilli() != base {
		t.Errorf("IDTime = %v %v, want %d ms", got, ok, base)
	}
}
