package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"notify/e2e/stack"
	"notify/pkg/devtoken"
	"notify/pkg/redisbus"
)

func init() {
	// The first frames of a stream are checked as text against the
	// document's string schema.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// specPath is api/openapi.yaml of this checkout.
func specPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "api", "openapi.yaml")
}

// loadSpec loads and validates the document and routes it to the given
// servers (the processes under test) instead of the documented ones.
func loadSpec(t *testing.T, servers ...string) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(specPath())
	if err != nil {
		t.Fatalf("load %s: %v", specPath(), err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	doc.Servers = nil
	for _, s := range servers {
		doc.Servers = append(doc.Servers, &openapi3.Server{URL: s})
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// reqSpec says what the document must think of a request.
type reqSpec int

const (
	inSpec     reqSpec = iota // the document allows the request
	outOfSpec                 // the document rejects it too (the server answered 4xx)
	eitherSpec                // not decidable from the document (e.g. a token's content)
)

type apiCase struct {
	name    string
	method  string
	url     string
	header  map[string]string
	body    string
	status  int
	request reqSpec
	check   func(t *testing.T, resp *http.Response, body []byte)
}

// run sends c to the real process, then checks the request and the
// response against the document.
func (c apiCase) run(t *testing.T, router routers.Router) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	newReq := func() *http.Request {
		req, err := http.NewRequestWithContext(ctx, c.method, c.url, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.body == "" {
			req.Body = http.NoBody
		}
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		return req
	}

	vreq := newReq()
	route, params, err := router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s: no route in the document for %s %s: %v", c.name, c.method, c.url, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	switch {
	case c.request == inSpec && reqErr != nil:
		t.Errorf("%s: the document rejects a request the server accepts: %v", c.name, reqErr)
	case c.request == outOfSpec && reqErr == nil:
		t.Errorf("%s: the document allows a request the server rejects with %d", c.name, c.status)
	}

	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	body := readSome(t, resp)
	if resp.StatusCode != c.status {
		t.Fatalf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
	}
	in.Request = newReq() // ValidateRequest consumed the first one's body
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: response %d does not match the document: %v\nbody: %s", c.name, resp.StatusCode, err, body)
	}
	if c.check != nil {
		c.check(t, resp, body)
	}
}

// readSome reads a whole body, or for an event stream its first frame
// (the retry field): a stream never ends by itself.
func readSome(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var buf bytes.Buffer
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		buf.WriteString(line)
		if err != nil || line == "\n" {
			return buf.Bytes()
		}
	}
}

func problemOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	return p
}

// api/openapi.yaml describes what the real binaries answer: every status
// docs/api.md names, for both services.
func TestOpenAPIMatchesServers(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	// For the 429s: one publish per 10 s, one stream per subject.
	limitedW := s.StartWrite(map[string]string{"PUBLISH_RATE_LIMIT": "0.1", "PUBLISH_RATE_BURST": "1"})
	limitedR := s.StartRead(map[string]string{"MAX_CONNECTIONS_PER_SUBJECT": "1"})
	// For the 503s: services whose Redis is gone (a stack of its own).
	down := stack.New(t)
	downW, downR := down.StartWrite(nil), down.StartRead(nil)
	down.Redis.Kill()
	doc, router := loadSpec(t, w.URL, r.URL, limitedW.URL, limitedR.URL, downW.URL, downR.URL)

	pub := s.PublisherToken("openapi")
	sub := s.SubscriberToken("openapi-sub", "seller:42", "fleet:acme")
	noScope, err := devtoken.Publisher(stack.Secret, "notifications", "weak", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearerH := func(tok string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	}
	withKey := func(tok, key string) map[string]string {
		h := bearerH(tok)
		h["Idempotency-Key"] = key
		return h
	}
	one := `{"topics":["seller:42"],"type":"task.assigned","data":{"taskId":7}}`
	big := `{"topics":["seller:42"],"type":"big","data":"` + strings.Repeat("x", 70_000) + `"}`

	open(t, limitedR, sub, "") // holds the subject's only slot
	retryAfter := func(t *testing.T, resp *http.Response, b []byte) {
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q, want whole seconds >= 1", resp.Header.Get("Retry-After"))
		}
		if p := problemOf(t, b); p["status"] != float64(resp.StatusCode) {
			t.Errorf("problem status %v, response %d", p["status"], resp.StatusCode)
		}
	}

	// A cursor into history that is gone: the topic's keys vanish (as when
	// it expires) after its head was read.
	reader, err := devtoken.Publisher(stack.Secret, "notifications", "admin", "notifications:read", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, w, pub, []string{"device:gone"}, "t", 1)
	goneHead := readHistoryDoc(t, r, reader, url.Values{"topic": {"device:gone"}}).Head
	keys := redisbus.Keys{Prefix: "notify:"}
	s.Redis.Client().Del(t.Context(), keys.Meta("device:gone"), keys.History("device:gone"))
	readH := map[string]string{"Authorization": "Bearer " + sub}

	var firstID string
	cases := []apiCase{
		{name: "publish 202", method: "POST", url: w.URL + "/v1/notifications", header: withKey(pub, "oa-1"), body: one, status: 202,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				var a struct{ ID string }
				_ = json.Unmarshal(b, &a)
				firstID = a.ID
			}},
		{name: "publish replay 202", method: "POST", url: w.URL + "/v1/notifications", header: withKey(pub, "oa-1"), body: one, status: 202,
			check: func(t *testing.T, resp *http.Response, b []byte) {
				var a struct{ ID string }
				_ = json.Unmarshal(b, &a)
				if resp.Header.Get("Idempotent-Replayed") != "true" || a.ID != firstID {
					t.Errorf("replay: header %q id %s, want true and %s", resp.Header.Get("Idempotent-Replayed"), a.ID, firstID)
				}
			}},
		{name: "publish key reused 422", method: "POST", url: w.URL + "/v1/notifications", header: withKey(pub, "oa-1"),
			body: `{"topics":["seller:42"],"type":"other"}`, status: 422},
		{name: "batch 202", method: "POST", url: w.URL + "/v1/notifications/batch", header: bearerH(pub),
			body: `{"notifications":[` + one + `,{"topics":["fleet:acme","broadcast"],"type":"fleet.update","data":null}]}`, status: 202,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				var a struct{ IDs []string }
				if _ = json.Unmarshal(b, &a); len(a.IDs) != 2 {
					t.Errorf("batch ids %s", b)
				}
			}},
		{name: "publish with a key 202", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub),
			body: `{"topics":["seller:42"],"type":"status","key":"door-1","data":{"open":true}}`, status: 202},
		{name: "publish with key null 202", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub),
			body: `{"topics":["seller:42"],"type":"status","key":null,"data":1}`, status: 202},
		{name: "batch removing a key 202", method: "POST", url: w.URL + "/v1/notifications/batch", header: bearerH(pub),
			body: `{"notifications":[{"topics":["seller:42"],"type":"status","key":"lamp","data":1},{"topics":["seller:42"],"type":"status","key":"lamp","data":null}]}`, status: 202},
		{name: "invalid key 400", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub),
			body: `{"topics":["seller:42"],"type":"status","key":"a b","data":1}`, status: 400, request: outOfSpec},
		{name: "malformed JSON 400", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub), body: `{"topics":`, status: 400, request: outOfSpec},
		{name: "invalid topic 400", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub),
			body: `{"topics":["Seller 42"],"type":"t"}`, status: 400, request: outOfSpec},
		{name: "reserved type 400", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub),
			body: `{"topics":["seller:42"],"type":"stream.reset"}`, status: 400, request: outOfSpec},
		{name: "batch item 400 with index", method: "POST", url: w.URL + "/v1/notifications/batch", header: bearerH(pub),
			body: `{"notifications":[` + one + `,{"topics":[],"type":"t"}]}`, status: 400, request: outOfSpec,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				if p := problemOf(t, b); p["index"] != float64(1) {
					t.Errorf("batch problem index %v, want 1: %s", p["index"], b)
				}
			}},
		{name: "no token 401", method: "POST", url: w.URL + "/v1/notifications", header: map[string]string{"Content-Type": "application/json"},
			body: one, status: 401, request: eitherSpec},
		{name: "no scope 403", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(noScope), body: one, status: 403},
		{name: "data too large 413", method: "POST", url: w.URL + "/v1/notifications", header: bearerH(pub), body: big, status: 413},
		{name: "not JSON 415", method: "POST", url: w.URL + "/v1/notifications",
			header: map[string]string{"Authorization": "Bearer " + pub, "Content-Type": "text/plain"}, body: "hello", status: 415, request: outOfSpec},
		{name: "publish within the rate 202", method: "POST", url: limitedW.URL + "/v1/notifications", header: bearerH(pub), body: one, status: 202},
		{name: "publish over the rate 429", method: "POST", url: limitedW.URL + "/v1/notifications", header: bearerH(pub), body: one, status: 429, check: retryAfter},
		{name: "batch over the rate 429", method: "POST", url: limitedW.URL + "/v1/notifications/batch", header: bearerH(pub),
			body: `{"notifications":[` + one + `]}`, status: 429, check: retryAfter},
		{name: "publish without Redis 503", method: "POST", url: downW.URL + "/v1/notifications", header: bearerH(pub), body: one, status: 503, check: retryAfter},
		{name: "batch without Redis 503", method: "POST", url: downW.URL + "/v1/notifications/batch", header: bearerH(pub),
			body: `{"notifications":[` + one + `]}`, status: 503, check: retryAfter},

		{name: "stream 200 bearer", method: "GET", url: r.URL + "/v1/stream?topic=seller:42&topic=fleet:acme",
			header: map[string]string{"Authorization": "Bearer " + sub}, status: 200,
			check: func(t *testing.T, resp *http.Response, b []byte) {
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || !bytes.HasPrefix(b, []byte("retry:")) {
					t.Errorf("stream: Content-Type %q, first frame %q", ct, b)
				}
			}},
		{name: "stream 200 access_token and lastEventId", method: "GET",
			url: r.URL + "/v1/stream?access_token=" + sub + "&lastEventId=not-a-cursor", status: 200},
		{name: "stream 200 Last-Event-ID", method: "GET", url: r.URL + "/v1/stream?topic=fleet:acme",
			header: map[string]string{"Authorization": "Bearer " + sub, "Last-Event-ID": "x"}, status: 200},
		{name: "stream invalid topic 400", method: "GET", url: r.URL + "/v1/stream?topic=NOT%20A%20TOPIC",
			header: map[string]string{"Authorization": "Bearer " + sub}, status: 400, request: outOfSpec},
		{name: "stream bad token 401", method: "GET", url: r.URL + "/v1/stream?access_token=garbage", status: 401, request: eitherSpec},
		{name: "stream no token 401", method: "GET", url: r.URL + "/v1/stream", status: 401, request: eitherSpec},
		{name: "stream topic not granted 403", method: "GET", url: r.URL + "/v1/stream?topic=seller:43",
			header: map[string]string{"Authorization": "Bearer " + sub}, status: 403},
		{name: "stream over the subject's limit 429", method: "GET", url: limitedR.URL + "/v1/stream",
			header: map[string]string{"Authorization": "Bearer " + sub}, status: 429, check: retryAfter},
		{name: "stream snapshot 200", method: "GET", url: r.URL + "/v1/stream?topic=seller:42&snapshot=true", header: readH, status: 200},
		{name: "stream snapshot not a boolean 400", method: "GET", url: r.URL + "/v1/stream?snapshot=maybe", header: readH, status: 400, request: outOfSpec},
		{name: "history 200", method: "GET", url: r.URL + "/v1/history?topic=seller:42&limit=2", header: readH, status: 200},
		{name: "history 200 access_token, never published", method: "GET", url: r.URL + "/v1/history?topic=fleet:acme&access_token=" + sub, status: 200},
		{name: "history limit 400", method: "GET", url: r.URL + "/v1/history?topic=seller:42&limit=0", header: readH, status: 400, request: outOfSpec},
		{name: "history unreadable before 400", method: "GET", url: r.URL + "/v1/history?topic=seller:42&before=x", header: readH, status: 400},
		{name: "history no token 401", method: "GET", url: r.URL + "/v1/history?topic=seller:42", status: 401, request: eitherSpec},
		{name: "history not granted 403", method: "GET", url: r.URL + "/v1/history?topic=seller:43", header: readH, status: 403},
		{name: "history gone 410", method: "GET", url: r.URL + "/v1/history?topic=device:gone&before=" + goneHead,
			header: map[string]string{"Authorization": "Bearer " + reader}, status: 410},
		{name: "history without Redis 503", method: "GET", url: downR.URL + "/v1/history?topic=seller:42", header: readH, status: 503, check: retryAfter},
		{name: "state 200", method: "GET", url: r.URL + "/v1/state?topic=seller:42", header: readH, status: 200,
			check: func(t *testing.T, _ *http.Response, b []byte) {
				var d stateDoc
				if err := json.Unmarshal(b, &d); err != nil || len(d.Entries) != 1 || *d.Entries[0].Key != "door-1" {
					t.Errorf("state %s, want door-1 alone", b)
				}
			}},
		{name: "state missing topic 400", method: "GET", url: r.URL + "/v1/state", header: readH, status: 400, request: outOfSpec},
		{name: "state no token 401", method: "GET", url: r.URL + "/v1/state?topic=seller:42", status: 401, request: eitherSpec},
		{name: "state not granted 403", method: "GET", url: r.URL + "/v1/state?topic=seller:43", header: readH, status: 403},
		{name: "state without Redis 503", method: "GET", url: downR.URL + "/v1/state?topic=seller:42", header: readH, status: 503, check: retryAfter},
		{name: "stream without Redis 503", method: "GET", url: downR.URL + "/v1/stream",
			header: map[string]string{"Authorization": "Bearer " + sub}, status: 503, check: retryAfter},
	}
	for _, p := range []*stack.Proc{w, r} {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			cases = append(cases, apiCase{name: p.Name + path, method: "GET", url: p.URL + path, status: 200})
		}
	}
	for _, p := range []*stack.Proc{downW, downR} {
		cases = append(cases, apiCase{name: p.Name + " /readyz without Redis", method: "GET", url: p.URL + "/readyz", status: 503})
	}
	for _, c := range cases {
		c.run(t, router) // in order: the replay and 422 cases follow the first publish
	}

	// The events' data match their schemas: the stream.reset an unreadable
	// cursor gives, then a notification's Envelope.
	c := open(t, r, sub, "?topic=seller:42&lastEventId=not-a-cursor")
	id := publish(t, w, pub, []string{"seller:42"}, "task.assigned", map[string]any{"taskId": 8})
	eventData(t, doc, c, "stream.reset", "StreamReset")
	env := eventData(t, doc, c, "task.assigned", "Envelope")
	if env["id"] != id || env["topic"] != "seller:42" || env["type"] != "task.assigned" {
		t.Errorf("envelope %v, want id %s on seller:42", env, id)
	}
	// A snapshot stream: entries are Envelopes with a key, then
	// stream.synced.
	snap := open(t, r, sub, "?topic=seller:42&snapshot=true")
	if e := eventData(t, doc, snap, "status", "Envelope"); e["key"] != "door-1" {
		t.Errorf("snapshot entry %v, want key door-1", e)
	}
	eventData(t, doc, snap, "stream.synced", "StreamSynced")
	// The schema is not vacuous: it rejects a broken envelope.
	env["time"] = "yesterday"
	if validateSchema(doc, "Envelope", env) == nil {
		t.Errorf("the Envelope schema accepts time %q", env["time"])
	}
}

// eventData reads c's next event, which must be of type typ, and checks
// its data against the document's schema name.
func eventData(t *testing.T, doc *openapi3.T, c *stack.Conn, typ, name string) map[string]any {
	t.Helper()
	ev, err := c.Next(5 * time.Second)
	if err != nil || ev.Type != typ {
		t.Fatalf("event %q %q (%v), want %s", ev.Type, ev.Data, err, typ)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("%s data %q: %v", typ, ev.Data, err)
	}
	if err := validateSchema(doc, name, v); err != nil {
		t.Errorf("%s data does not match %s: %v\ndata: %s", typ, name, err, ev.Data)
	}
	return v
}

func validateSchema(doc *openapi3.T, name string, v any) error {
	return doc.Components.Schemas[name].Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation())
}
