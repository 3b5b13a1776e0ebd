package auth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzFromRequest: any Authorization header and access_token value give a
// token or ErrUnauthenticated; a token is never empty nor padded with
// spaces; the header wins over the query; the query is read only when
// allowed; and Token never prints its value.
func FuzzFromRequest(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "q.q.q", true, true)
	f.Add("bearer   abc  ", "", true, false)
	f.Add("Basic dXNlcjpwYXNz", "q", true, true)
	f.Add("Bearer", "q", true, true)
	f.Add("Bearer ", "q", true, true)
	f.Add("", "tok&access_token=second", false, true)
	f.Add("", "", false, true)
	f.Add("", "%00\r\n", false, true)
	f.Add("Bearer\tabc", "", true, false)
	f.Fuzz(func(t *testing.T, header, query string, withHeader, allowQuery bool) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{Path: "/v1/stream", RawQuery: QueryParam + "=" + url.QueryEscape(query)}}
		if withHeader {
			r.Header.Set("Authorization", header)
		}
		tok, err := FromRequest(r, allowQuery)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			if tok != "" {
				t.Fatalf("token %q returned with error", string(tok))
			}
			if len(tok) > 0 && strings.Contains(err.Error(), string(tok)) {
				t.Fatal("error message carries the token")
			}
			return
		}
		if tok == "" {
			t.Fatal("empty token without error")
		}
		if tok.String() != "[REDACTED]" {
			t.Fatalf("Token.String leaks: %q", tok.String())
		}
		switch {
		case withHeader && header != "":
			scheme, rest, _ := strings.Cut(header, " ")
			if !strings.EqualFold(scheme, "Bearer") || string(tok) != strings.TrimSpace(rest) {
				t.Fatalf("header %q gave token %q", header, string(tok))
			}
			if strings.TrimSpace(string(tok)) != string(tok) {
				t.Fatalf("token %q keeps surrounding space", string(tok))
			}
		case allowQuery:
			if string(tok) != query {
				t.Fatalf("query %q gave token %q", query, string(tok))
			}
		default:
			t.Fatalf("token %q taken from the query although not allowed", string(tok))
		}
	})
}
