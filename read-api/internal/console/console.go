// Package console serves the live console: a small page, embedded in the
// binary, that opens a stream with the Notify browser client and shows what
// arrives. The client's bundle, static/notify-client.js, is built from
// clients/js (make console-js); a test there checks the copy is current.
package console

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed static
var files embed.FS

// Path is where the console is served.
const Path = "/console/"

// csp keeps the page to its own scripts and styles; streams may go to the
// configured base URLs, so connect-src allows any http(s) origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Mount adds GET /console (a redirect) and GET /console/... (the page and
// its assets).
func Mount(r gin.IRouter) {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	server := http.StripPrefix(Path, http.FileServer(http.FS(static)))
	r.GET("/console", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, Path) })
	r.GET(Path+"*file", func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		server.ServeHTTP(c.Writer, c.Request)
	})
}
