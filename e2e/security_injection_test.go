package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
)

// Publisher-controlled type, topic and data cannot add an SSE field, an
// event or a header: invalid type/topic is refused with 400 and publishes
// nothing; any JSON data arrives as exactly one event whose data decodes
// to what was sent.
func TestInjectionPublisher(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	pub := s.PublisherToken("svc")
	st := openRaw(t, r.URL+"/v1/stream?topic=seller:1", bearer(s.SubscriberToken("sub", "seller:1")))
	if st.Resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", st.Resp.StatusCode)
	}

	refused := []struct{ topics, typ string }{
		{`["seller:1"]`, `"t\nevent: evil"`},
		{`["seller:1"]`, `"t\r\nid: 1"`},
		{`["seller:1"]`, `"t\r"`},
		{`["seller:1"]`, `"t\u0000"`},
		{`["seller:1"]`, `"t data: x"`},
		{`["seller:1"]`, `"stream.reset"`},
		{`["seller:1"]`, `"stream.expired"`},
		{`["seller:1\n"]`, `"t"`},
		{`["seller:1\r\ndata: x"]`, `"t"`},
		{`["seller:1\u0000"]`, `"t"`},
		{`["seller:1","seller:1 "]`, `"t"`},
	}
	for _, c := range refused {
		body := `{"topics":` + c.topics + `,"type":` + c.typ + `,"data":1}`
		status, h, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, nil)
		if err != nil || status != http.StatusBadRequest || h.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: status %d %q err %v body %s", body, status, h.Get("Content-Type"), err, resp)
		}
	}

	// Invalid UTF-8 is refused before anything is stored: it cannot reach
	// a stream, raw or repaired.
	bad := "{\"topics\":[\"seller:1\"],\"type\":\"t\",\"data\":\"\xff\xfe invalid utf-8\"}"
	if status, h, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, bad, nil); err != nil || status != http.StatusBadRequest || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("invalid UTF-8 in data: status %d %q err %v body %s", status, h.Get("Content-Type"), err, resp)
	}

	datas := []string{
		`{"s":"a\r\n\r\nevent: evil\ndata: x\n\nid: 9\n\n"}`,
		`"\r"`, `"\n\n"`, `"\u0000id: x"`, `"\u2028\u2029\u0085"`, `"\ud800"`,
		`"</script><script>alert(1)</script>"`,
		"[1,\r\n2,\n\n3]",
		`{"data: x":"event: y","retry":"1"}`,
		`null`,
	}
	types := []string{"task.assigned", "A:b-c_d.e", "retry", "data", "id", "0"}
	ids := make([]string, len(datas))
	for i, d := range datas {
		body := `{"topics":["seller:1"],"type":"` + types[i%len(types)] + `","data":` + d + `}`
		status, _, resp, err := stack.Post(t.Context(), w.URL+"/v1/notifications", pub, body, nil)
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("publish %s: %d %v %s", body, status, err, resp)
		}
		var out struct{ ID string }
		_ = json.Unmarshal(resp, &out)
		ids[i] = out.ID
	}

	evs, raw := st.events(t, len(datas), 5*time.Second)
	checkWire(t, raw)
	if len(evs) != len(datas) {
		t.Fatalf("%d events for %d notifications:\n%q", len(evs), len(datas), raw)
	}
	if n := strings.Count(string(raw), "\nevent: "); n != len(datas) {
		t.Fatalf("%d event lines for %d notifications", n, len(datas))
	}
	for i, ev := range evs {
		if ev.Type != types[i%len(types)] {
			t.Errorf("event %d: type %q, want %q", i, ev.Type, types[i%len(types)])
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev.Data), &env); err != nil {
			t.Fatalf("event %d data %q: %v", i, ev.Data, err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range env {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"data", "id", "time", "topic", "type"}) {
			t.Errorf("event %d: envelope keys %v", i, keys)
		}
		var id, topic string
		_ = json.Unmarshal(env["id"], &id)
		_ = json.Unmarshal(env["topic"], &topic)
		if id != ids[i] || topic != "seller:1" {
			t.Errorf("event %d: id %q topic %q, want %q seller:1", i, id, topic, ids[i])
		}
		var got, want any
		_ = json.Unmarshal(env["data"], &got)
		_ = json.Unmarshal([]byte(datas[i]), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: data %#v, want %#v", i, got, want)
		}
	}
}

// Subscriber-controlled topic and lastEventId cannot inject either: a bad
// topic is a 400 with no echoed header; a hostile cursor is an unreadable
// cursor (stream.reset) and nothing else.
func TestInjectionSubscriber(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	tok := s.SubscriberToken("sub", "seller:1")

	for _, topic := range []string{"seller:1\r\nX-Evil: 1", "seller:1\nevent: x", "seller:1\x00", "seller:1\r"} {
		resp, err := http.Get(r.URL + "/v1/stream?access_token=" + tok + "&topic=" + url.QueryEscape(topic))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Evil") != "" || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("topic %q: %d %v", topic, resp.StatusCode, resp.Header)
		}
	}

	hostile := "x\r\nevent: evil\n\ndata: y\n\nid: z\rretry: 1\x00"
	st := openRaw(t, r.URL+"/v1/stream?topic=seller:1&lastEventId="+url.QueryEscape(hostile), bearer(tok))
	if st.Resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", st.Resp.StatusCode)
	}
	id := publish(t, w, s.PublisherToken("svc"), []string{"seller:1"}, "after.reset", 1)
	evs, raw := st.events(t, 2, 5*time.Second)
	checkWire(t, raw)
	if len(evs) != 2 || evs[0].Type != "stream.reset" || evs[1].Type != "after.reset" {
		t.Fatalf("events %+v\nraw %q", evs, raw)
	}
	var reset struct {
		Topics []string `json:"topics"`
		Reason string   `json:"reason"`
	}
	if err := json.Unmarshal([]byte(evs[0].Data), &reset); err != nil || strings.ContainsAny(reset.Reason, "\r\n") || strings.Contains(evs[0].Data, "evil") {
		t.Fatalf("reset data %q: %v", evs[0].Data, err)
	}
	if env, _ := stack.DecodeEnvelope(evs[1]); env.ID != id {
		t.Fatalf("event after reset %+v", env)
	}

	// Control characters in request headers never reach the handler.
	for _, h := range []string{"Last-Event-ID: a\x00b", "Last-Event-ID: a\rb", "X-Request-ID: a\x00b"} {
		out := rawRequest(t, r, "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n"+h+"\r\n\r\n", 3*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 400") {
			t.Fatalf("header %q: answer %.80q", h, out)
		}
	}
}
