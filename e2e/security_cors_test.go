package e2e

import (
	"net/http"
	"strings"
	"testing"

	"notify/e2e/stack"
)

func corsRequest(t *testing.T, method, url, origin string, extra map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Only CORS_ALLOWED_ORIGINS get CORS headers, preflight is answered, and
// credentials are never allowed (tokens travel in headers or the query,
// never in cookies), so "*" can never combine with credentials.
func TestCORS(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	const allowed = "https://app.example"
	env := map[string]string{"CORS_ALLOWED_ORIGINS": allowed + ",https://admin.example"}
	w, r := s.StartWrite(env), s.StartRead(env)
	plainW, plainR := s.StartWrite(nil), s.StartRead(nil)
	wild := map[string]string{"CORS_ALLOWED_ORIGINS": "*"}
	wildW, wildR := s.StartWrite(wild), s.StartRead(wild)

	noCredentials := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
			t.Errorf("Access-Control-Allow-Credentials: %q", v)
		}
	}
	hasNoCORS := func(t *testing.T, resp *http.Response) {
		t.Helper()
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("unexpected %s: %q", k, resp.Header.Get(k))
			}
		}
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
	streamPreflight := map[string]string{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "last-event-id, authorization"}

	for _, p := range []struct {
		proc            *stack.Proc
		path            string
		pre             map[string]string
		plain, wildcard *stack.Proc
	}{
		{w, "/v1/notifications", preflight, plainW, wildW},
		{r, "/v1/stream", streamPreflight, plainR, wildR},
	} {
		t.Run(p.proc.Name, func(t *testing.T) {
			// Allowed origin: exact echo, Vary: Origin, no credentials.
			resp := corsRequest(t, http.MethodGet, p.proc.URL+"/healthz", allowed, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != allowed || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("allowed origin: %d %v", resp.StatusCode, resp.Header)
			}
			noCredentials(t, resp)

			// Preflight from an allowed origin.
			resp = corsRequest(t, http.MethodOptions, p.proc.URL+p.path, allowed, p.pre)
			if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
				t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
			}
			for _, h := range strings.Split(p.pre["Access-Control-Request-Headers"], ", ") {
				if !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), h) {
					t.Errorf("preflight does not allow header %s: %q", h, resp.Header.Get("Access-Control-Allow-Headers"))
				}
			}
			if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), p.pre["Access-Control-Request-Method"]) {
				t.Errorf("preflight methods %q", resp.Header.Get("Access-Control-Allow-Methods"))
			}
			noCredentials(t, resp)

			// Other origins, lookalikes included: no CORS header at all.
			for _, o := range []string{"https://evil.example", "https://app.example.evil.com", "http://app.example", "null", "https://app.example:8443"} {
				for _, m := range []string{http.MethodGet, http.MethodOptions} {
					resp := corsRequest(t, m, p.proc.URL+p.path, o, p.pre)
					hasNoCORS(t, resp)
					if resp.StatusCode < 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
						t.Errorf("%s from %s: %d %q, want a problem", m, o, resp.StatusCode, resp.Header.Get("Content-Type"))
					}
				}
			}

			// Nothing configured: no CORS headers for anyone.
			hasNoCORS(t, corsRequest(t, http.MethodOptions, p.plain.URL+p.path, allowed, p.pre))
			hasNoCORS(t, corsRequest(t, http.MethodGet, p.plain.URL+"/healthz", allowed, nil))

			// "*": any origin, but never together with credentials.
			resp = corsRequest(t, http.MethodGet, p.wildcard.URL+"/healthz", "https://anyone.example", nil)
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("wildcard: %v", resp.Header)
			}
			noCredentials(t, resp)
			noCredentials(t, corsRequest(t, http.MethodOptions, p.wildcard.URL+p.path, "https://anyone.example", p.pre))
		})
	}

	// read-api writes a stream's 200 head itself (after the hijack): the
	// CORS headers must be on it too.
	t.Run("stream 200", func(t *testing.T) {
		tok := s.SubscriberToken("cors", "seller:1")
		stream := func(p *stack.Proc, origin string) *http.Response {
			t.Helper()
			h := bearer(tok)
			h.Set("Origin", origin)
			c, err := stack.Open(t.Context(), p.URL+"/v1/stream", h)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			return c.Resp
		}
		isStream := func(t *testing.T, resp *http.Response) {
			t.Helper()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}

		resp := stream(r, allowed)
		isStream(t, resp)
		if resp.Header.Get("Access-Control-Allow-Origin") != allowed || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("allowed origin's stream: %v", resp.Header)
		}
		noCredentials(t, resp)

		// A configured pod never streams to another origin, even with a valid token.
		resp = stream(r, "https://evil.example")
		hasNoCORS(t, resp)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("stream to a disallowed origin: %d", resp.StatusCode)
		}

		// Nothing configured: the stream is served, without CORS headers.
		resp = stream(plainR, allowed)
		isStream(t, resp)
		hasNoCORS(t, resp)

		// A refused stream (here 401) is readable cross-origin too, with
		// Retry-After exposed: the browser client reads the problem and
		// the wait from it.
		refused := corsRequest(t, http.MethodGet, r.URL+"/v1/stream", allowed, map[string]string{"Authorization": "Bearer not-a-token", "Last-Event-ID": "x"})
		if refused.StatusCode != http.StatusUnauthorized || refused.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Errorf("refused stream: %d %v", refused.StatusCode, refused.Header)
		}
		if exp := strings.ToLower(refused.Header.Get("Access-Control-Expose-Headers")); !strings.Contains(exp, "retry-after") {
			t.Errorf("Access-Control-Expose-Headers %q lacks Retry-After", exp)
		}

		resp = stream(wildR, "https://anyone.example")
		isStream(t, resp)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("wildcard stream: %v", resp.Header)
		}
		noCredentials(t, resp)
	})
}
