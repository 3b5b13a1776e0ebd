//go:build pprof

// Profiling for benchmark work only: `go build -tags pprof ./write-api` and
// set PPROF_ADDR (e.g. 127.0.0.1:6060) to serve net/http/pprof there.
package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
