// Package healthcheck lets a binary probe its own /healthz, for container
// health checks in images that have no shell or curl.
package healthcheck

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Flag is the command-line argument that asks for a health check.
const Flag = "-healthcheck"

// Requested reports whether args ask for a health check.
func Requested(args []string) bool { return slices.Contains(args[1:], Flag) }

// Run GETs /healthz on the service's own address and returns the exit code.
func Run(addr, fallback string) int {
	if addr == "" {
		addr = fallback
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
