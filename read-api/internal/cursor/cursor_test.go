package cursor

import (
	"errors"
	"testing"

	"notify/pkg/notification"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	keys := []TopicKey{KeyOf("seller:42"), KeyOf("broadcast")}
	pos := []notification.Position{{Epoch: 1763770000123456, Seq: 7}, {}}
	enc, _ := Append(nil, nil, keys, pos)
	c, err := Parse(string(enc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c[keys[0]] != pos[0] || c[keys[1]] != pos[1] {
		t.Fatalf("round trip: got %v", c)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "!!", "AA", "AQ" + "AAAA", string(make([]byte, 9000))} {
		if _, err := Parse(s); !errors.Is(err, ErrUnreadable) {
			t.Errorf("Parse(%.20q) = %v, want ErrUnreadable", s, err)
		}
	}
}
