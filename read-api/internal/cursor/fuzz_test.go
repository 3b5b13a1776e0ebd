package cursor

import (
	"encoding/binary"
	"errors"
	"testing"

	"notify/pkg/notification"
)

// FuzzParse: any string (a client's Last-Event-ID or lastEventId) parses
// or fails with ErrUnreadable, never panics, and what parses re-encodes to
// a cursor that parses to the same positions.
func FuzzParse(f *testing.F) {
	good, _ := Append(nil, nil, []TopicKey{KeyOf("seller:1"), KeyOf("broadcast")}, []notification.Position{{Epoch: 1, Seq: 2}, {Epoch: 3, Seq: 1 << 40}})
	f.Add(string(good))
	f.Add("")
	f.Add("AQ")
	f.Add("AQAAAAAAAAAB")
	f.Add("AQAAAAAAAAABgICAgICAgICAgAE")
	f.Add("not a cursor\r\nevent: x")
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrUnreadable) {
				t.Fatalf("Parse(%q): %v does not wrap ErrUnreadable", s, err)
			}
			return
		}
		keys := make([]TopicKey, 0, len(c))
		pos := make([]notification.Position, 0, len(c))
		for k, p := range c {
			keys = append(keys, k)
			pos = append(pos, p)
		}
		enc, _ := Append(nil, nil, keys, pos)
		c2, err := Parse(string(enc))
		if err != nil || len(c2) != len(c) {
			t.Fatalf("re-encoded %q: %v, %v", enc, c2, err)
		}
		for k, p := range c {
			if c2[k] != p {
				t.Fatalf("key %x: %v then %v", k, p, c2[k])
			}
		}
	})
}

// FuzzRoundTrip: Append then Parse gives back every position.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("seller:1"), uint64(1), uint64(2), uint64(0), uint64(0))
	f.Add([]byte{}, ^uint64(0), ^uint64(0), uint64(7), uint64(1))
	f.Fuzz(func(t *testing.T, raw []byte, e1, s1, e2, s2 uint64) {
		keys := []TopicKey{KeyOf(string(raw)), KeyOf(string(raw) + "x")}
		pos := []notification.Position{{Epoch: e1, Seq: s1}, {Epoch: e2, Seq: s2}}
		scratch := make([]byte, 0, 4)
		enc, _ := Append([]byte("prefix:"), scratch, keys, pos)
		s := string(enc[len("prefix:"):])
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("cursor %q has byte %q outside base64url: unsafe in an SSE id", s, c)
			}
		}
		c, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(Append(...)) = %v", err)
		}
		for i, k := range keys {
			if c[k] != pos[i] {
				t.Fatalf("key %d: got %v want %v", i, c[k], pos[i])
			}
		}
		if max := 1 + 2*(8+2*binary.MaxVarintLen64); len(s) > (max*4+2)/3 {
			t.Fatalf("cursor longer than expected: %d", len(s))
		}
	})
}
