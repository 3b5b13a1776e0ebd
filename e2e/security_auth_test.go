package e2e

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"notify/e2e/stack"
)

const issuer = "https://id.example"

// claimsE2E is a token valid for both services: it grants seller:1 and the
// publish scope. Tests change one claim at a time (nil deletes it).
func claimsE2E(changes map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub": "matrix", "aud": "notifications", "iss": issuer,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"topics": []string{"seller:1"}, "scope": "notifications:publish",
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

type authCase struct {
	name       string
	header     string // Authorization value; empty: none
	query      string // extra stream query, e.g. "&topic=seller:2"
	topics     string // publish topics JSON; default ["seller:1"]
	read, pub  int    // expected statuses
	tokenQuery bool   // send the token as access_token instead of the header
}

func runAuthMatrix(t *testing.T, w, r *stack.Proc, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			u := r.URL + "/v1/stream?topic=seller:1" + tc.query
			if tc.tokenQuery {
				u += "&access_token=" + strings.TrimPrefix(tc.header, "Bearer ")
			} else if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			c, err := stack.Open(t.Context(), u, h)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Resp.StatusCode
			ct := c.Resp.Header.Get("Content-Type")
			c.Close()
			if got != tc.read {
				t.Errorf("read-api: %d, want %d", got, tc.read)
			}
			if got != http.StatusOK && ct != "application/problem+json" {
				t.Errorf("read-api: %d with Content-Type %q", got, ct)
			}
			if tc.tokenQuery {
				return
			}
			topics := tc.topics
			if topics == "" {
				topics = `["seller:1"]`
			}
			hdr := map[string]string{}
			if tc.header == "" {
				hdr["Authorization"] = ""
			} else {
				hdr["Authorization"] = tc.header
			}
			status, ph, body, err := stack.Post(t.Context(), w.URL+"/v1/notifications", "", `{"topics":`+topics+`,"type":"t","data":1}`, hdr)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.pub {
				t.Errorf("write-api: %d, want %d: %s", status, tc.pub, body)
			}
			if status != http.StatusAccepted && ph.Get("Content-Type") != "application/problem+json" {
				t.Errorf("write-api: %d with Content-Type %q", status, ph.Get("Content-Type"))
			}
		})
	}
}

// The auth matrix against both services with JWT_HS256_SECRET and
// JWT_ISSUER set.
func TestAuthMatrixHS256(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	s.Env["JWT_ISSUER"] = issuer
	w, r := s.StartWrite(nil), s.StartRead(nil)
	secret := []byte(stack.Secret)
	hs := func(changes map[string]any) string {
		return "Bearer " + mint(t, jwt.SigningMethodHS256, secret, "", claimsE2E(changes))
	}
	now := time.Now()
	valid := hs(nil)
	parts := strings.Split(strings.TrimPrefix(valid, "Bearer "), ".")
	cases := []authCase{
		{name: "valid", header: valid, read: 200, pub: 202},
		{name: "valid via access_token", header: valid, tokenQuery: true, read: 200},
		{name: "missing", read: 401, pub: 401},
		{name: "scheme only", header: "Bearer", read: 401, pub: 401},
		{name: "basic auth", header: "Basic bWF0cml4OnB3", read: 401, pub: 401},
		{name: "malformed", header: "Bearer not.a.jwt", read: 401, pub: 401},
		{name: "two segments", header: "Bearer " + parts[0] + "." + parts[1], read: 401, pub: 401},
		{name: "garbage via access_token", header: "Bearer %%%", tokenQuery: true, read: 401},
		{name: "wrong signature", header: "Bearer " + mint(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), "", claimsE2E(nil)), read: 401, pub: 401},
		{name: "signature stripped", header: "Bearer " + parts[0] + "." + parts[1] + ".", read: 401, pub: 401},
		{name: "alg none", header: "Bearer " + mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsE2E(nil)), read: 401, pub: 401},
		{name: "HS512 with the right secret", header: "Bearer " + mint(t, jwt.SigningMethodHS512, secret, "", claimsE2E(nil)), read: 401, pub: 401},
		{name: "expired", header: hs(map[string]any{"exp": now.Add(-time.Minute).Unix()}), read: 401, pub: 401},
		{name: "no exp", header: hs(map[string]any{"exp": nil}), read: 401, pub: 401},
		{name: "no sub", header: hs(map[string]any{"sub": nil}), read: 401, pub: 401},
		{name: "empty sub", header: hs(map[string]any{"sub": ""}), read: 401, pub: 401},
		{name: "nbf in 1 min", header: hs(map[string]any{"nbf": now.Add(time.Minute).Unix()}), read: 401, pub: 401},
		{name: "nbf in 2s (within leeway)", header: hs(map[string]any{"nbf": now.Add(2 * time.Second).Unix()}), read: 200, pub: 202},
		{name: "iat in 1 min", header: hs(map[string]any{"iat": now.Add(time.Minute).Unix()}), read: 401, pub: 401},
		{name: "wrong aud", header: hs(map[string]any{"aud": "billing"}), read: 401, pub: 401},
		{name: "no aud", header: hs(map[string]any{"aud": nil}), read: 401, pub: 401},
		{name: "aud list including ours", header: hs(map[string]any{"aud": []string{"billing", "notifications"}}), read: 200, pub: 202},
		{name: "wrong iss", header: hs(map[string]any{"iss": "https://evil.example"}), read: 401, pub: 401},
		{name: "no iss", header: hs(map[string]any{"iss": nil}), read: 401, pub: 401},
		{name: "topic not in claim", header: valid, query: "&topic=seller:2", read: 403, pub: 202},
		{name: "topic prefix of claim", header: hs(map[string]any{"topics": []string{"seller:10"}}), read: 403, pub: 202},
		{name: "topics claim a string", header: hs(map[string]any{"topics": "seller:1"}), read: 401, pub: 401},
		{name: "topics claim an object", header: hs(map[string]any{"topics": map[string]bool{"seller:1": true}}), read: 401, pub: 401},
		{name: "topics claim numbers", header: hs(map[string]any{"topics": []int{1}}), read: 401, pub: 401},
		{name: "no scope", header: hs(map[string]any{"scope": nil}), read: 200, pub: 403},
		{name: "scope as array", header: hs(map[string]any{"scope": []string{"notifications:publish"}}), read: 401, pub: 401},
		{name: "scope lookalike", header: hs(map[string]any{"scope": "notifications:publisher notifications:broadcast"}), read: 200, pub: 403},
		{name: "broadcast without its scope", header: valid, topics: `["seller:1","broadcast"]`, read: 200, pub: 403},
		{name: "broadcast with its scope", header: hs(map[string]any{"scope": "notifications:publish notifications:broadcast"}), topics: `["broadcast"]`, read: 200, pub: 202},
		{name: "broadcast scope alone", header: hs(map[string]any{"scope": "notifications:broadcast"}), topics: `["broadcast"]`, read: 200, pub: 403},
	}
	runAuthMatrix(t, w, r, cases)
}

// With JWT_PUBLIC_KEY_FILE (RSA, two PEM blocks): both keys are accepted
// (rotation), kid selects its key, and an HS256 token signed with the
// public key's PEM bytes (algorithm confusion) is refused.
func TestAuthMatrixRSAKeySet(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	k1, k2, stranger := rsaKeyE2E(t), rsaKeyE2E(t), rsaKeyE2E(t)
	pem1, pem2 := pemOf(t, k1, "k1"), pemOf(t, k2, "")
	file := append(append([]byte{}, pem1...), pem2...)
	env := maps.Clone(s.Env)
	delete(s.Env, "JWT_HS256_SECRET")
	s.Env["JWT_PUBLIC_KEY_FILE"] = writeTemp(t, "jwt.pem", file)
	w, r := s.StartWrite(nil), s.StartRead(nil)
	rs := jwt.SigningMethodRS256
	tok := func(m jwt.SigningMethod, key any, kid string) string {
		return "Bearer " + mint(t, m, key, kid, claimsE2E(nil))
	}
	cases := []authCase{
		{name: "key 1 kid k1", header: tok(rs, k1, "k1"), read: 200, pub: 202},
		{name: "key 1 no kid", header: tok(rs, k1, ""), read: 200, pub: 202},
		{name: "key 2 no kid (rotation)", header: tok(rs, k2, ""), read: 200, pub: 202},
		{name: "key 2 new kid", header: tok(rs, k2, "k2"), read: 200, pub: 202},
		{name: "key 2 claiming kid k1", header: tok(rs, k2, "k1"), read: 401, pub: 401},
		{name: "unknown key", header: tok(rs, stranger, ""), read: 401, pub: 401},
		{name: "alg confusion: HS256 with the PEM block", header: tok(jwt.SigningMethodHS256, pem1, "k1"), read: 401, pub: 401},
		{name: "alg confusion: HS256 with the whole file", header: tok(jwt.SigningMethodHS256, file, ""), read: 401, pub: 401},
		{name: "alg confusion: HS256 with the DER key", header: tok(jwt.SigningMethodHS256, mustDER(t, k1), ""), read: 401, pub: 401},
		{name: "HS256 with the old shared secret", header: tok(jwt.SigningMethodHS256, []byte(env["JWT_HS256_SECRET"]), ""), read: 401, pub: 401},
		{name: "PS256 with key 1", header: tok(jwt.SigningMethodPS256, k1, "k1"), read: 401, pub: 401},
		{name: "alg none", header: tok(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ""), read: 401, pub: 401},
	}
	runAuthMatrix(t, w, r, cases)
}

// Tokens never reach the logs, even at debug level, whether sent in the
// query (EventSource) or the Authorization header, valid or not.
func TestTokensNotLogged(t *testing.T) {
	t.Parallel()
	s := stack.New(t)
	debug := map[string]string{"LOG_LEVEL": "debug"}
	w, r := s.StartWrite(debug), s.StartRead(debug)
	sub := s.SubscriberToken("logged", "seller:1")
	bad := sub[:len(sub)-4] + "AAAA" // wrong signature
	pub := s.PublisherToken("svc")

	c := openRaw(t, r.URL+"/v1/stream?topic=seller:1&access_token="+sub, nil)
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", c.Resp.StatusCode)
	}
	publish(t, w, pub, []string{"seller:1"}, "t", 1)
	c.events(t, 1, 5*time.Second)
	c.cancel()
	for _, u := range []string{
		"/v1/stream?access_token=" + bad,
		"/v1/stream?topic=seller:2&access_token=" + sub,
		"/v1/stream?topic=bad%20topic&access_token=" + sub,
		"/v1/stream?access_token=" + sub + "&access_token=" + bad,
		"/nowhere?access_token=" + sub,
	} {
		resp, err := http.Get(r.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications", bad, `{}`, nil); st != 401 {
		t.Fatalf("bad publish token: %d", st)
	}
	if st, _, _, _ := stack.Post(t.Context(), w.URL+"/v1/notifications?access_token="+pub, pub, `{"topics":["seller:1"],"type":"t"}`, nil); st != 202 {
		t.Fatalf("publish: %d", st)
	}
	time.Sleep(300 * time.Millisecond) // let the access log lines of closed streams land
	for _, p := range []*stack.Proc{r, w} {
		logs := p.Logs()
		if !strings.Contains(logs, "access_token=REDACTED") {
			t.Errorf("%s: no redacted access log line captured:\n%s", p.Name, logs)
		}
		for name, secret := range map[string]string{"subscriber token": sub, "bad token": bad, "publisher token": pub} {
			sig := secret[strings.LastIndexByte(secret, '.')+1:]
			if strings.Contains(logs, sig) {
				t.Errorf("%s logs hold the %s:\n%s", p.Name, name, logs)
			}
		}
	}
}
