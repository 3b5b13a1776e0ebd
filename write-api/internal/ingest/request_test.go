package ingest

import (
	"encoding/json"
	"strings"
	"testing"
)

// A key follows the grammar of a topic id; null is no key.
func TestNormalizeKey(t *testing.T) {
	l := Limits{MaxDataBytes: 1 << 10, MaxBatch: 10}
	for body, ok := range map[string]bool{
		`{"topics":["device:1"],"type":"s","key":"sensor-1.a~b@c_d","data":1}`:        true,
		`{"topics":["device:1"],"type":"s","key":null,"data":1}`:                      true,
		`{"topics":["device:1"],"type":"s","key":"` + strings.Repeat("k", 128) + `"}`: true,
		`{"topics":["device:1"],"type":"s","key":"","data":1}`:                        false,
		`{"topics":["device:1"],"type":"s","key":"a b","data":1}`:                     false,
		`{"topics":["device:1"],"type":"s","key":"a:b","data":1}`:                     false,
		`{"topics":["device:1"],"type":"s","key":"` + strings.Repeat("k", 129) + `"}`: false,
	} {
		var r Request
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if err := l.Normalize(&r); (err == nil) != ok {
			t.Errorf("%s: error %v, want ok=%v", body, err, ok)
		}
	}
}
