package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"notify/pkg/notification"
	"notify/pkg/problem"
	"notify/write-api/internal/ingest"
)

var fuzzLimits = ingest.Limits{MaxDataBytes: 4096, MaxBatch: 5}

// FuzzDecodePublish runs a publish body through the handler's strict
// decoder and Normalize. Every failure is a client problem (400 or 413),
// never an internal one; whatever passes is canonical: valid deduplicated
// topics, a valid type, compact JSON data within the limit on one line.
func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"topics":["seller:42"],"type":"task.assigned","data":{"taskId":7}}`,
		`{"topics":["seller:1","seller:1","broadcast"],"type":"t","data":null}`,
		`{"topics":["seller:1"],"type":"t"}`,
		`{"topics":["seller:1"],"type":"t","data":"line1\nline2\r\n\u0000\u2028"}`,
		`{"topics":["seller:1"],"type":"t","data":{ "a" : [ 1 ,
		 2 ] }}`,
		`{"topics":["seller:1"],"type":"t\nevent: x","data":1}`,
		`{"topics":["seller:1\r\n"],"type":"t","data":1}`,
		`{"topics":["seller:1"],"type":"stream.reset","data":1}`,
		`{"topics":["seller:1"],"type":"t","data":1,"extra":1}`,
		`{"topics":["seller:1"],"type":"t","data":1} {}`,
		`{"topics":[],"type":"t"}`,
		`{"topics":"seller:1","type":"t"}`,
		`{"TOPICS":["seller:1"],"Type":"t","DATA":2}`,
		`{"topics":["seller:1"],"type":"t","data":"\xff\xfe"}`,
		`[]`, `null`, ``, `{`, `{"topics":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req ingest.Request
		err := decodeStrict(body, &req)
		if err == nil {
			err = fuzzLimits.Normalize(&req)
		}
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || (pe.Status() != http.StatusBadRequest && pe.Status() != http.StatusRequestEntityTooLarge) {
				t.Fatalf("body %q: error %v is not a 400/413 problem", body, err)
			}
			return
		}
		checkCanonical(t, body, req)
		again := req
		again.Topics = slices.Clone(req.Topics)
		if err := fuzzLimits.Normalize(&again); err != nil || !slices.Equal(again.Topics, req.Topics) || !bytes.Equal(again.Data, req.Data) {
			t.Fatalf("Normalize not idempotent on %q: %v", body, err)
		}
	})
}

// FuzzDecodeBatch: the batch decoder and NormalizeBatch; a failing item is
// named by its index.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"notifications":[{"topics":["a:1"],"type":"t","data":1},{"topics":["b:2"],"type":"u"}]}`))
	f.Add([]byte(`{"notifications":[{"topics":["a:1"],"type":"t"},{"topics":["bad"],"type":"u"}]}`))
	f.Add([]byte(`{"notifications":[]}`))
	f.Add([]byte(`{"notifications":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req batchRequest
		err := decodeStrict(body, &req)
		if err == nil {
			err = fuzzLimits.NormalizeBatch(req.Notifications)
		}
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || (pe.Status() != http.StatusBadRequest && pe.Status() != http.StatusRequestEntityTooLarge) {
				t.Fatalf("body %q: error %v is not a 400/413 problem", body, err)
			}
			if pe.Index != nil && (*pe.Index < 0 || *pe.Index >= len(req.Notifications)) {
				t.Fatalf("index %d out of range", *pe.Index)
			}
			return
		}
		for _, it := range req.Notifications {
			checkCanonical(t, body, it)
		}
	})
}

func checkCanonical(t *testing.T, body []byte, req ingest.Request) {
	t.Helper()
	if len(req.Topics) < 1 || len(req.Topics) > ingest.MaxTopics {
		t.Fatalf("body %q: %d topics accepted", body, len(req.Topics))
	}
	seen := map[string]bool{}
	for _, tp := range req.Topics {
		if notification.ValidateTopic(tp) != nil || seen[tp] {
			t.Fatalf("body %q: topic %q accepted (dup=%v)", body, tp, seen[tp])
		}
		seen[tp] = true
	}
	if notification.ValidateType(req.Type) != nil {
		t.Fatalf("body %q: type %q accepted", body, req.Type)
	}
	if !json.Valid(req.Data) || len(req.Data) > fuzzLimits.MaxDataBytes || bytes.ContainsAny(req.Data, "\r\n") {
		t.Fatalf("body %q: data %q accepted", body, req.Data)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, req.Data)
	if !bytes.Equal(compact.Bytes(), req.Data) {
		t.Fatalf("body %q: data %q not compact", body, req.Data)
	}
}
