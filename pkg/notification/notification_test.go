package notification

import (
	"encoding/json"
	"testing"
	"time"
)

func TestEnvelopeTime(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 34, 0, 631_000_000, time.UTC)
	env := Envelope{ID: "01a200e3-85b7-7a9e-8dbb-6d96e2e6063f", Topic: "seller:42", Type: "task.assigned", Time: at, Data: json.RawMessage(`{"time":"1999-01-01T00:00:00Z"}`)}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := EnvelopeTime(b); !ok || !got.Equal(at) {
		t.Fatalf("EnvelopeTime(%s) = %v, %v; want %v", b, got, ok, at)
	}
	for _, bad := range []string{``, `{}`, `{"id":"x","time":"yesterday"}`, `{"id":"x","time":"2026-11-22T01:34:00Z`} {
		if got, ok := EnvelopeTime([]byte(bad)); ok {
			t.Errorf("EnvelopeTime(%s) = %v, want not ok", bad, got)
		}
	}
}
