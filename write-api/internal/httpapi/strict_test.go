package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"notify/pkg/problem"
	"notify/write-api/internal/ingest"
)

func TestDecodeStrictOne(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		detail     string // in the 400's detail; empty: accepted
	}{
		{"valid", `{"topics":["seller:1"],"type":"t","data":{"a":[1,"é"]}}`, ""},
		{"whitespace and order", " {\n\"data\" : 1 , \"type\":\"t\", \"topics\" : [\"seller:1\"] }\n", ""},
		{"data is free-form", `{"topics":["seller:1"],"type":"t","data":{"a":1,"a":2,"A":3}}`, ""},
		{"no data", `{"topics":["seller:1"],"type":"t"}`, ""},
		{"upper-case name", `{"topics":["seller:1"],"TYPE":"t"}`, `"type"`},
		{"mixed-case name", `{"Topics":["seller:1"],"type":"t"}`, "case-sensitive"},
		{"duplicated member", `{"topics":["seller:1"],"type":"t","type":"u"}`, "type: duplicated member"},
		{"duplicated data", `{"topics":["seller:1"],"type":"t","data":1,"data":2}`, "data: duplicated member"},
		{"unknown member", `{"topics":["seller:1"],"type":"t","extra":1}`, "extra: unknown member"},
		{"invalid UTF-8 in data", "{\"topics\":[\"seller:1\"],\"type\":\"t\",\"data\":\"\xff\"}", "UTF-8"},
		{"invalid UTF-8 in a data key", "{\"topics\":[\"seller:1\"],\"type\":\"t\",\"data\":{\"\xc3\":1}}", "UTF-8"},
		{"invalid UTF-8 in type", "{\"topics\":[\"seller:1\"],\"type\":\"t\xe2\x82\"}", "UTF-8"},
		{"wrong type", `{"topics":"seller:1","type":"t"}`, "topics: a JSON string where an array is expected"},
		{"trailing data", `{"topics":["seller:1"],"type":"t"} {}`, "trailing"},
		{"array", `[]`, "JSON object"},
		{"null", `null`, "JSON object"},
		{"empty", ``, "JSON object"},
		{"truncated", `{"topics":["seller:1"],"type":`, "malformed JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var req ingest.Request
			err := decodeStrict([]byte(c.body), &req)
			if c.detail == "" {
				if err != nil || len(req.Topics) != 1 || req.Type != "t" {
					t.Fatalf("rejected: %v (%+v)", err, req)
				}
				return
			}
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status() != http.StatusBadRequest || !strings.Contains(pe.Detail, c.detail) {
				t.Fatalf("got %v, want a 400 whose detail says %q", err, c.detail)
			}
		})
	}
}

func TestDecodeStrictBatch(t *testing.T) {
	t.Parallel()
	ok := `{"notifications":[{"topics":["a:1"],"type":"t","data":1},{"topics":["b:2"],"type":"u"}]}`
	var req batchRequest
	if err := decodeStrict([]byte(ok), &req); err != nil || len(req.Notifications) != 2 || req.Notifications[1].Type != "u" || string(req.Notifications[0].Data) != "1" {
		t.Fatalf("valid batch: %v %+v", err, req)
	}
	for _, c := range []struct {
		body, detail string
		index        int // -1: none
	}{
		{`{"notifications":[{"topics":["a:1"],"type":"t"},{"topics":["b:2"],"Type":"u"}]}`, "notifications[1].Type", 1},
		{`{"notifications":[{"topics":["a:1"],"type":"t","type":"t"}]}`, "notifications[0].type: duplicated", 0},
		{`{"notifications":[{"topics":["a:1"],"type":"t","x":0}]}`, "notifications[0].x: unknown", 0},
		{`{"notifications":[],"notifications":[]}`, "notifications: duplicated", -1},
		{`{"Notifications":[]}`, "case-sensitive", -1},
		{`{"notifications":{}}`, "want a JSON array", -1},
	} {
		var req batchRequest
		err := decodeStrict([]byte(c.body), &req)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Status() != http.StatusBadRequest || !strings.Contains(pe.Detail, c.detail) {
			t.Fatalf("%s: got %v, want a 400 saying %q", c.body, err, c.detail)
		}
		if (c.index < 0) != (pe.Index == nil) || (pe.Index != nil && *pe.Index != c.index) {
			t.Fatalf("%s: index %v, want %d", c.body, pe.Index, c.index)
		}
	}
}
