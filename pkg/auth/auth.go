// Package auth verifies Notify's JWTs: algorithm pinned by the configured
// key, exp required, nbf/iat with leeway, audience and issuer checked.
package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Leeway is the clock skew allowed on nbf, iat and exp.
const Leeway = 5 * time.Second

// Scopes an internal service's token may carry: publishing, publishing to
// broadcast, and reading any topic's history and state.
const (
	ScopePublish   = "notifications:publish"
	ScopeBroadcast = "notifications:broadcast"
	ScopeRead      = "notifications:read"
)

// MinSecretBytes is the shortest HS256 secret the services accept.
const MinSecretBytes = 32

var (
	// ErrUnauthenticated is wrapped by every token failure (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrNoSubject is wrapped when a token has no sub: per-subject limits
	// and idempotency keys are scoped by sub, so every token needs one.
	ErrNoSubject = errors.New("the token has no sub claim")
	// ErrConfig is wrapped by key configuration errors found at start.
	ErrConfig = errors.New("auth configuration")
)

// Config selects the verification key; exactly one of HS256Secret and
// PublicKeyFile must be set.
type Config struct {
	HS256Secret   string
	PublicKeyFile string
	Audience      string
	Issuer        string
	// CacheSize, when positive, remembers that many verified tokens, so a
	// service that sends the same token on every request pays for its
	// signature once; the time claims are still checked on every use.
	CacheSize int
}

// Claims are the registered claims plus Notify's own.
type Claims struct {
	jwt.RegisteredClaims
	Topics []string `json:"topics,omitempty"`
	Scope  string   `json:"scope,omitempty"`
}

// HasScope reports whether the space-separated scope claim includes s.
func (c *Claims) HasScope(s string) bool {
	return slices.Contains(strings.Fields(c.Scope), s)
}

// Verifier checks tokens against the configured key set.
type Verifier struct {
	keys      jwt.VerificationKeySet
	byKid     map[string]any // keys labelled with a "kid" PEM header
	methods   []string
	parser    *jwt.Parser
	validator *jwt.Validator // the parser's claim checks, for cached tokens
	cache     *tokenCache    // nil: off
}

// NewVerifier loads the key and fails on any configuration mistake, so a
// bad key is found at start and never on a request.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{}
	switch {
	case cfg.HS256Secret != "" && cfg.PublicKeyFile != "":
		return nil, fmt.Errorf("%w: set only one of JWT_HS256_SECRET and JWT_PUBLIC_KEY_FILE", ErrConfig)
	case cfg.HS256Secret != "":
		if len(cfg.HS256Secret) < MinSecretBytes {
			return nil, fmt.Errorf("%w: JWT_HS256_SECRET must be at least %d bytes", ErrConfig, MinSecretBytes)
		}
		v.keys.Keys = []jwt.VerificationKey{[]byte(cfg.HS256Secret)}
		v.methods = []string{jwt.SigningMethodHS256.Alg()}
	case cfg.PublicKeyFile != "":
		if err := v.loadPEM(cfg.PublicKeyFile); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: set one of JWT_HS256_SECRET and JWT_PUBLIC_KEY_FILE", ErrConfig)
	}
	if cfg.Audience == "" {
		return nil, fmt.Errorf("%w: JWT_AUDIENCE must not be empty", ErrConfig)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithAudience(cfg.Audience),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	v.validator = jwt.NewValidator(opts...)
	if cfg.CacheSize > 0 {
		v.cache = &tokenCache{max: cfg.CacheSize, m: map[Token]*Claims{}}
	}
	return v, nil
}

// Verify parses and validates a token. The claims returned may be shared
// with other callers: read them, do not change them.
func (v *Verifier) Verify(token Token) (*Claims, error) {
	if claims := v.cache.get(token); claims != nil {
		if err := v.validator.Validate(claims); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return claims, nil
	}
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(string(token), claims, v.keyFor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if claims.ExpiresAt == nil {
		return nil, fmt.Errorf("%w: exp is required", ErrUnauthenticated)
	}
	if strings.TrimSpace(claims.Subject) == "" {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, ErrNoSubject)
	}
	v.cache.put(token, claims)
	return claims, nil
}

// Detail is the client-facing text of a Verify error: it names what the
// client can fix without echoing the token or the library's wording.
func Detail(err error) string {
	if errors.Is(err, ErrNoSubject) {
		return "the token has no sub claim: every token needs a non-empty sub"
	}
	return "the token is invalid or expired"
}

// tokenCache holds tokens whose signature and claims verified. Full, it
// starts over rather than tracking use: its users are a few publishing
// services, each with one token at a time.
type tokenCache struct {
	mu  sync.Mutex
	max int
	m   map[Token]*Claims
}

func (c *tokenCache) get(t Token) *Claims {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[t]
}

func (c *tokenCache) put(t Token, claims *Claims) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[t] = claims
}

// keyFor selects the verification key. A token whose kid names a labelled
// key is checked against that key only; any other token (no kid, or a kid
// this file does not label) against every key of the set. Either way the
// signature must verify with a configured key, so kid is only a hint that
// saves work and makes rotation visible; it grants nothing.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if kid, ok := t.Header["kid"].(string); ok {
		if k, ok := v.byKid[kid]; ok {
			return k, nil
		}
	}
	return v.keys, nil
}

// loadPEM reads one or more public keys; several blocks form a key set so
// keys can be rotated with both accepted meanwhile. A block may carry a
// "kid: <id>" PEM header naming the key (see keyFor). All keys must be of
// one family, which pins the accepted algorithms.
func (v *Verifier) loadPEM(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: read JWT_PUBLIC_KEY_FILE: %w", ErrConfig, err)
	}
	var family string
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w: JWT_PUBLIC_KEY_FILE: %w", ErrConfig, err)
		}
		f, methods, err := methodsFor(pub)
		if err != nil {
			return err
		}
		if family != "" && f != family {
			return fmt.Errorf("%w: JWT_PUBLIC_KEY_FILE mixes %s and %s keys", ErrConfig, family, f)
		}
		family = f
		v.methods = methods
		v.keys.Keys = append(v.keys.Keys, pub)
		if kid := pemKid(block); kid != "" {
			if _, dup := v.byKid[kid]; dup {
				return fmt.Errorf("%w: JWT_PUBLIC_KEY_FILE labels two keys kid %q", ErrConfig, kid)
			}
			if v.byKid == nil {
				v.byKid = map[string]any{}
			}
			v.byKid[kid] = pub
		}
	}
	if len(v.keys.Keys) == 0 {
		return fmt.Errorf("%w: JWT_PUBLIC_KEY_FILE holds no PEM public key", ErrConfig)
	}
	return nil
}

// pemKid returns the block's "kid" header (any letter case), trimmed.
func pemKid(b *pem.Block) string {
	for k, val := range b.Headers {
		if strings.EqualFold(k, "kid") {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

func methodsFor(pub any) (family string, methods []string, err error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", []string{jwt.SigningMethodRS256.Alg()}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "EC P-256", []string{jwt.SigningMethodES256.Alg()}, nil
		case elliptic.P384():
			return "EC P-384", []string{jwt.SigningMethodES384.Alg()}, nil
		case elliptic.P521():
			return "EC P-521", []string{jwt.SigningMethodES512.Alg()}, nil
		}
		return "", nil, fmt.Errorf("%w: unsupported ECDSA curve", ErrConfig)
	case ed25519.PublicKey:
		return "Ed25519", []string{jwt.SigningMethodEdDSA.Alg()}, nil
	}
	return "", nil, fmt.Errorf("%w: unsupported public key type %T", ErrConfig, pub)
}
