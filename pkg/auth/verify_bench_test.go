package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify is one subscriber connect's token check (no cache):
// base64, JSON claims, HMAC.
func BenchmarkVerify(b *testing.B) {
	secret := "0123456789abcdef0123456789abcdef"
	v, err := NewVerifier(Config{HS256Secret: secret, Audience: "notifications"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user-123", "aud": "notifications", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"topics": []string{"seller:42", "device:7f3a"},
	}).SignedString([]byte(secret))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(Token(tok)); err != nil {
			b.Fatal(err)
		}
	}
}
