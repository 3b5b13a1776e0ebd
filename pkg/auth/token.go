package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// Token is a raw JWT. Its String method hides the value so a token that
// reaches a log line or an error message by mistake is not leaked.
type Token string

func (Token) String() string { return "[REDACTED]" }

// QueryParam is the query parameter browsers use, since EventSource cannot
// set an Authorization header.
const QueryParam = "access_token"

// FromRequest takes the bearer token from the Authorization header or,
// when allowQuery is set, from the access_token query parameter. The header
// wins when both are present.
func FromRequest(r *http.Request, allowQuery bool) (Token, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", fmt.Errorf("%w: Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
		}
		return Token(strings.TrimSpace(tok)), nil
	}
	if allowQuery {
		if tok := r.URL.Query().Get(QueryParam); tok != "" {
			return Token(tok), nil
		}
	}
	return "", fmt.Errorf("%w: missing bearer token", ErrUnauthenticated)
}
