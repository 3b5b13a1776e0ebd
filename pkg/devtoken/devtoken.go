// Package devtoken mints HS256 tokens for local development and tests.
// Production tokens come from the deployment's own identity provider.
package devtoken

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"notify/pkg/auth"
)

// Subscriber returns a token granting topics, valid for ttl.
func Subscriber(secret, audience, subject string, topics []string, ttl time.Duration) (string, error) {
	return sign(secret, auth.Claims{RegisteredClaims: registered(audience, subject, ttl), Topics: topics})
}

// Publisher returns a token carrying the given scopes, valid for ttl.
func Publisher(secret, audience, subject, scope string, ttl time.Duration) (string, error) {
	return sign(secret, auth.Claims{RegisteredClaims: registered(audience, subject, ttl), Scope: scope})
}

func registered(audience, subject string, ttl time.Duration) jwt.RegisteredClaims {
	now := time.Now()
	return jwt.RegisteredClaims{
		Subject: subject, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
}

func sign(secret string, c auth.Claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("devtoken: sign: %w", err)
	}
	return s, nil
}
