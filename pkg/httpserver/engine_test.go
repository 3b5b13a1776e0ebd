package httpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gin-gonic/gin"
)

// The access log holds no token from the query, no forged client address
// and no unsafe request id.
func TestAccessLogIsSafe(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	r := NewEngine(zap.New(core), nil)
	r.GET("/x", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodGet, "/x?access_token=secret-token&topic=a:1", nil)
	req.RemoteAddr = "127.0.0.9:1234"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Request-ID", "evil\nid"+strings.Repeat("x", 100))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)

	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	f := entries[0].ContextMap()
	if q := f["query"].(string); strings.Contains(q, "secret-token") || !strings.Contains(q, "access_token=REDACTED") {
		t.Errorf("query logged as %q", q)
	}
	if f["remote"] != "127.0.0.9" {
		t.Errorf("remote logged as %v, want the peer 127.0.0.9", f["remote"])
	}
	if id := f["request_id"].(string); strings.Contains(id, "evil") || id == "" || rec.Header().Get("X-Request-ID") != id {
		t.Errorf("request id %q (response header %q)", id, rec.Header().Get("X-Request-ID"))
	}
}
