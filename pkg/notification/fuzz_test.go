package notification

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The API's grammar (docs/api.md) as regexps: the reference the hand-written
// validators are fuzzed against.
var (
	topicRE = regexp.MustCompile(`\A(?:broadcast|[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._~@-]{1,128})\z`)
	typeRE  = regexp.MustCompile(`\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\z`)
)

func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"broadcast", "seller:42", "device:7f3a-01", "a:b", "Seller:1", "seller:", ":1",
		"seller:4\n2", "seller:42\r\nevent: x", "seller:\x00", "broadcastx", "a:b:c", strings.Repeat("k", 32) + ":1",
		strings.Repeat("k", 33) + ":1", "k:" + strings.Repeat("i", 128), "k:" + strings.Repeat("i", 129), "k:é", "k:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateTopic(s)
		if want := topicRE.MatchString(s); (err == nil) != want {
			t.Fatalf("ValidateTopic(%q) = %v, grammar says valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Fatalf("ValidateTopic(%q): error %v does not wrap ErrInvalidTopic", s, err)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Fatalf("error message not clipped: %d bytes", len(err.Error()))
		}
	})
}

func FuzzValidateType(f *testing.F) {
	for _, s := range []string{"task.assigned", "a", "A:b-c_d.e", "stream.reset", "stream", "streamx.y", ".a", "-a",
		"a b", "a\nevent: x", "a\r", "a\x00", strings.Repeat("t", 128), strings.Repeat("t", 129), "é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateType(s)
		want := typeRE.MatchString(s) && !strings.HasPrefix(s, ReservedTypePrefix)
		if (err == nil) != want {
			t.Fatalf("ValidateType(%q) = %v, grammar says valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidType) {
			t.Fatalf("ValidateType(%q): error %v does not wrap ErrInvalidType", s, err)
		}
		if err == nil && strings.ContainsAny(s, "\r\n\x00 ") {
			t.Fatalf("ValidateType accepted %q, which could inject an SSE field", s)
		}
	})
}

// FuzzNormalizeTopics takes a list joined with "\x1f" (the fuzzer has no
// slice type): valid lists come back deduplicated in first-seen order,
// and any invalid element rejects the whole list.
func FuzzNormalizeTopics(f *testing.F) {
	f.Add("seller:1\x1fseller:2\x1fseller:1")
	f.Add("broadcast\x1fbroadcast")
	f.Add("seller:1\x1fbad topic")
	f.Add("")
	f.Add("\x1f")
	f.Fuzz(func(t *testing.T, joined string) {
		in := strings.Split(joined, "\x1f")
		orig := slices.Clone(in)
		out, err := NormalizeTopics(in)
		if !slices.Equal(in, orig) {
			t.Fatalf("input modified: %q -> %q", orig, in)
		}
		anyInvalid := slices.ContainsFunc(in, func(s string) bool { return !topicRE.MatchString(s) })
		if (err != nil) != anyInvalid {
			t.Fatalf("NormalizeTopics(%q) err %v, any invalid %v", in, err, anyInvalid)
		}
		if err != nil {
			return
		}
		var want []string
		for _, s := range in {
			if !slices.Contains(want, s) {
				want = append(want, s)
			}
		}
		if !slices.Equal(out, want) {
			t.Fatalf("NormalizeTopics(%q) = %q, want %q", in, out, want)
		}
		again, err := NormalizeTopics(out)
		if err != nil || !slices.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q, %v", out, again, err)
		}
	})
}

// FuzzDecodePublished: any payload decodes or fails with ErrBadMessage;
// what decodes re-encodes to the same payload, and a type never carries a
// space (the body separator), so it cannot swallow part of the envelope.
func FuzzDecodePublished(f *testing.F) {
	f.Add("seller:1", "1 2 0000abcd - task.assigned {\"id\":\"x\"}")
	f.Add("seller:1", "1 2 0000abcd 00000001 t")
	f.Add("t", "18446744073709551615 18446744073709551615 ffffffff ffffffff t {}")
	f.Add("t", "18446744073709551616 1 - - t {}")
	f.Add("t", "-1 1 - - t {}")
	f.Add("t", "1 1 1ffffffff - t {}")
	f.Add("t", "1  - - t {}")
	f.Add("t", " 1 - - t {}")
	f.Add("t", "1 1 - - t\n {\n}")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, topic, payload string) {
		m, err := DecodePublished(topic, payload)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("DecodePublished(%q): %v does not wrap ErrBadMessage", payload, err)
			}
			return
		}
		if m.Topic != topic || m.Type == "" || len(m.Envelope) == 0 || strings.Contains(m.Type, " ") {
			t.Fatalf("DecodePublished(%q) = %+v", payload, m)
		}
		re := EncodePublished(m)
		m2, err := DecodePublished(topic, re)
		if err != nil || m2.Pos != m.Pos || m2.Prev != m.Prev || m2.Type != m.Type || string(m2.Envelope) != string(m.Envelope) {
			t.Fatalf("round trip of %q via %q: %+v, %v", payload, re, m2, err)
		}
	})
}
