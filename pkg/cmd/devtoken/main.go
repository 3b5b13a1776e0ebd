// Command devtoken prints an HS256 token for local development:
//
//	devtoken -sub seller-42 -topics seller:42,fleet:acme
//	devtoken -sub billing -scope "notifications:publish notifications:broadcast"
//
// The secret comes from JWT_HS256_SECRET.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"notify/pkg/devtoken"
)

func main() {
	sub := flag.String("sub", "dev", "subject (sub claim)")
	topics := flag.String("topics", "", "comma-separated topics a subscriber may read")
	scope := flag.String("scope", "", "space-separated scopes of a publisher")
	aud := flag.String("aud", envOr("JWT_AUDIENCE", "notifications"), "audience")
	ttl := flag.Duration("ttl", 12*time.Hour, "validity")
	flag.Parse()
	secret := os.Getenv("JWT_HS256_SECRET")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "devtoken: set JWT_HS256_SECRET")
		os.Exit(2)
	}
	if strings.TrimSpace(*sub) == "" {
		fmt.Fprintln(os.Stderr, "devtoken: -sub must not be empty (the services refuse tokens without sub)")
		os.Exit(2)
	}
	var tok string
	var err error
	if *scope != "" {
		tok, err = devtoken.Publisher(secret, *aud, *sub, *scope, *ttl)
	} else {
		var list []string
		if *topics != "" {
			list = strings.Split(*topics, ",")
		}
		tok, err = devtoken.Subscriber(secret, *aud, *sub, list, *ttl)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(tok)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
