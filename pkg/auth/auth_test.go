package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemBlock(t *testing.T, pub any, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if kid != "" {
		b.Headers = map[string]string{"kid": kid}
	}
	return pem.EncodeToMemory(b)
}

func writeFile(t *testing.T, data ...[]byte) string {
	t.Helper()
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	p := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(p, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "s", "aud": "notifications", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) Token {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return Token(s)
}

// Key rotation: a file with two PEM blocks accepts tokens of both keys; a
// kid selects its key, so a token claiming k1 but signed by k2 fails.
func TestKeySetAndKid(t *testing.T) {
	t.Parallel()
	k1, k2, stranger := rsaKey(t), rsaKey(t), rsaKey(t)
	pub1 := pemBlock(t, &k1.PublicKey, "k1")
	path := writeFile(t, pub1, pemBlock(t, &k2.PublicKey, ""))
	v, err := NewVerifier(Config{PublicKeyFile: path, Audience: "notifications"})
	if err != nil {
		t.Fatal(err)
	}
	rs := jwt.SigningMethodRS256
	tests := []struct {
		name string
		tok  Token
		ok   bool
	}{
		{"key 1 with kid", sign(t, rs, k1, "k1", claims()), true},
		{"key 1 without kid", sign(t, rs, k1, "", claims()), true},
		{"key 2 without kid", sign(t, rs, k2, "", claims()), true},
		{"key 2 with unknown kid", sign(t, rs, k2, "new", claims()), true},
		{"key 2 claiming kid k1", sign(t, rs, k2, "k1", claims()), false},
		{"unknown key", sign(t, rs, stranger, "", claims()), false},
		{"unknown key claiming k1", sign(t, rs, stranger, "k1", claims()), false},
		{"HS256 signed with the PEM bytes", sign(t, jwt.SigningMethodHS256, pub1, "", claims()), false},
		{"HS256 signed with the PEM bytes, kid k1", sign(t, jwt.SigningMethodHS256, pub1, "k1", claims()), false},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims()), false},
		{"PS256 with key 1", sign(t, jwt.SigningMethodPS256, k1, "k1", claims()), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(tc.tok)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
		})
	}
}

func TestKeyFileErrors(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, path := range map[string]string{
		"duplicate kid": writeFile(t, pemBlock(t, &k.PublicKey, "a"), pemBlock(t, &rsaKey(t).PublicKey, "a")),
		"mixed family":  writeFile(t, pemBlock(t, &k.PublicKey, ""), pemBlock(t, &ec.PublicKey, "")),
		"no key":        writeFile(t, []byte("not pem")),
		"missing file":  filepath.Join(t.TempDir(), "absent.pem"),
	} {
		if _, err := NewVerifier(Config{PublicKeyFile: path, Audience: "notifications"}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
}

// Registered claims with HS256: exp required, nbf/iat with 5 s leeway,
// aud and iss checked, topics of the wrong JSON type rejected.
func TestClaimsHS256(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewVerifier(Config{HS256Secret: string(secret), Audience: "notifications", Issuer: "https://id.example"})
	if err != nil {
		t.Fatal(err)
	}
	cached, err := NewVerifier(Config{HS256Secret: string(secret), Audience: "notifications", Issuer: "https://id.example", CacheSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	with := func(k string, val any) jwt.MapClaims {
		c := claims()
		c["iss"] = "https://id.example"
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	hs := jwt.SigningMethodHS256
	tests := []struct {
		name string
		tok  Token
		ok   bool
	}{
		{"valid", sign(t, hs, secret, "", with("sub", "s")), true},
		{"wrong secret", sign(t, hs, []byte("another-secret-another-secret-xx"), "", with("sub", "s")), false},
		{"HS384", sign(t, jwt.SigningMethodHS384, secret, "", with("sub", "s")), false},
		{"no exp", sign(t, hs, secret, "", with("exp", nil)), false},
		{"no sub", sign(t, hs, secret, "", with("sub", nil)), false},
		{"empty sub", sign(t, hs, secret, "", with("sub", "")), false},
		{"blank sub", sign(t, hs, secret, "", with("sub", " ")), false},
		{"expired", sign(t, hs, secret, "", with("exp", now.Add(-time.Minute).Unix())), false},
		{"nbf in 2s (leeway)", sign(t, hs, secret, "", with("nbf", now.Add(2*time.Second).Unix())), true},
		{"nbf in 1m", sign(t, hs, secret, "", with("nbf", now.Add(time.Minute).Unix())), false},
		{"iat in 1m", sign(t, hs, secret, "", with("iat", now.Add(time.Minute).Unix())), false},
		{"wrong aud", sign(t, hs, secret, "", with("aud", "other")), false},
		{"aud list incl.", sign(t, hs, secret, "", with("aud", []string{"x", "notifications"})), true},
		{"wrong iss", sign(t, hs, secret, "", with("iss", "https://evil.example")), false},
		{"no iss", sign(t, hs, secret, "", with("iss", nil)), false},
		{"topics string", sign(t, hs, secret, "", with("topics", "seller:1")), false},
		{"topics object", sign(t, hs, secret, "", with("topics", map[string]any{"seller:1": true})), false},
		{"topics numbers", sign(t, hs, secret, "", with("topics", []int{1})), false},
		{"scope array", sign(t, hs, secret, "", with("scope", []string{ScopePublish})), false},
		{"malformed", Token("abc.def.ghi"), false},
		{"empty", Token(""), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := v.Verify(tc.tok); (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			for range 2 { // the second time from the cache, if it was accepted
				if _, err := cached.Verify(tc.tok); (err == nil) != tc.ok {
					t.Fatalf("Verify with a cache: %v, want ok=%v", err, tc.ok)
				}
			}
		})
	}
}

// A token without sub is refused for every kind of token, and the error
// says so (per-subject limits and idempotency keys are scoped by sub).
func TestSubjectRequired(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewVerifier(Config{HS256Secret: string(secret), Audience: "notifications"})
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]jwt.MapClaims{
		"subscriber": {"topics": []string{"seller:1"}},
		"publisher":  {"scope": ScopePublish + " " + ScopeBroadcast},
		"reader":     {"scope": "notifications:read"},
	} {
		c := claims()
		delete(c, "sub")
		for k, val := range extra {
			c[k] = val
		}
		_, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, "", c))
		if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, ErrNoSubject) {
			t.Errorf("%s token without sub: %v, want ErrUnauthenticated and ErrNoSubject", name, err)
		}
		if d := Detail(err); !strings.Contains(d, "sub") {
			t.Errorf("%s token without sub: detail %q does not name sub", name, d)
		}
	}
}

// A remembered token is still refused once it expires.
func TestCachedTokenExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		secret := []byte("0123456789abcdef0123456789abcdef")
		v, err := NewVerifier(Config{HS256Secret: string(secret), Audience: "notifications", CacheSize: 4})
		if err != nil {
			t.Fatal(err)
		}
		c := claims()
		c["exp"] = time.Now().Add(time.Second).Unix()
		tok := sign(t, jwt.SigningMethodHS256, secret, "", c)
		for range 2 {
			if _, err := v.Verify(tok); err != nil {
				t.Fatalf("Verify before exp: %v", err)
			}
		}
		time.Sleep(Leeway + 2*time.Second)
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify of a cached token after exp = %v, want ErrUnauthenticated", err)
		}
	})
}
