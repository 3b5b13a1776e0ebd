package redisbus

import "testing"

func TestKeysShareATagAndRoundTrip(t *testing.T) {
	t.Parallel()
	k := Keys{Prefix: "notify:"}
	for _, topic := range []string{"seller:42", "device:7f3a-01", "broadcast", "fleet:a}b{"} {
		ch := k.Channel(topic)
		if got, ok := k.TopicOf(ch); !ok || got != topic {
			t.Errorf("TopicOf(%q) = %q, %v", ch, got, ok)
		}
		tag := k.tag(k.Partition(topic))
		for _, key := range []string{k.Meta(topic), k.History(topic), ch} {
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
