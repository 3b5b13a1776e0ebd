package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func serve(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := gin.New()
	Mount(r)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	w := serve(t, "/console")
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != Path {
		t.Fatalf("GET /console: %d Location %q", w.Code, w.Header().Get("Location"))
	}
}

func TestPageAndAssets(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]struct{ ctype, body string }{
		"/console/":                 {"text/html", `id="log"`},
		"/console/console.js":       {"javascript", "NotifyClient"},
		"/console/notify-client.js": {"javascript", "Last-Event-ID"},
		"/console/console.css":      {"text/css", "#board"},
	} {
		w := serve(t, path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, w.Code)
			continue
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, want.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want.ctype)
		}
		if !strings.Contains(w.Body.String(), want.body) {
			t.Errorf("GET %s: body lacks %q", path, want.body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
}

func TestMissingAsset(t *testing.T) {
	t.Parallel()
	if w := serve(t, "/console/nope.js"); w.Code != http.StatusNotFound {
		t.Fatalf("GET /console/nope.js: %d, want 404", w.Code)
	}
}
