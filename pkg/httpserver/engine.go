// Package httpserver builds the gin engine and http.Server both services
// use: request ids, redacted access logs, CORS, ops endpoints, and timeouts
// that are safe for long-lived event streams.
package httpserver

import (
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-contrib/requestid"
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"notify/pkg/problem"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// requestID is built once: requestid.New sets a package variable, so
// engines built concurrently (tests, several services in one process)
// would race on it.
var requestID = sync.OnceValue(func() gin.HandlerFunc { return requestid.New() })

// NewEngine returns a gin engine with recovery, request ids, access logs
// and, when origins are configured, CORS for exactly those origins.
func NewEngine(log *zap.Logger, corsOrigins []string) *gin.Engine {
	r := gin.New()
	// No proxy is trusted to set X-Forwarded-For: the logged client address
	// is the peer's, never a header a client can forge.
	_ = r.SetTrustedProxies(nil)
	r.Use(recovery(log), dropBadRequestID, requestID(), accessLog(log))
	if len(corsOrigins) > 0 {
		r.Use(cors.New(cors.Config{
			AllowOrigins:     corsOrigins,
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowHeaders:     []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "Cache-Control"},
			ExposeHeaders:    []string{"Idempotent-Replayed", "Retry-After", "X-Request-ID"},
			AllowCredentials: false,
			MaxAge:           10 * time.Minute,
			// Consulted only for an origin outside the list: cors then
			// refuses with a bare 403, so the problem is written here.
			AllowOriginWithContextFunc: refuseOrigin,
		}))
	}
	r.NoRoute(func(c *gin.Context) {
		problem.Write(c.Writer, problem.New(problem.NotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	return r
}

// refuseOrigin answers a cross-origin request from an origin not allowed
// with a 403 problem, and lets cors abort the request.
func refuseOrigin(c *gin.Context, _ string) bool {
	problem.Write(c.Writer, problem.New(problem.Forbidden, "this origin is not allowed: see CORS_ALLOWED_ORIGINS"))
	return false
}

// redactedQuery hides the values of parameters that carry secrets.
func redactedQuery(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	q := u.Query()
	if _, ok := q["access_token"]; ok {
		q.Set("access_token", "REDACTED")
	}
	return q.Encode()
}

func accessLog(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if !log.Core().Enabled(zap.InfoLevel) {
			return
		}
		o := outcomeOf(c)
		fields := []zap.Field{
			zap.String("request_id", requestid.Get(c)),
			zap.String("method", c.Request.Method),
			zap.String("path", c.Request.URL.Path),
			zap.String("query", redactedQuery(c.Request.URL)),
			zap.Int("status", o.Status),
			zap.Int64("bytes", o.Bytes),
			zap.Duration("duration", time.Since(start)),
			zap.String("remote", c.ClientIP()),
		}
		if o.Note != "" {
			fields = append(fields, zap.String("outcome", o.Note))
		}
		log.Info("request", fields...)
	}
}

func recovery(log *zap.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		log.Error("panic in handler", zap.Any("panic", err), zap.String("path", c.Request.URL.Path))
		problem.Write(c.Writer, problem.New(problem.Internal, ""))
		c.Abort()
	})
}

// dropBadRequestID discards a client-sent X-Request-ID that is long or has
// characters beyond [A-Za-z0-9._-], so logs only hold ids that are safe to
// print; requestid then generates a fresh one.
func dropBadRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if id == "" {
		return
	}
	ok := len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		ch := id[i]
		ok = ch == '-' || ch == '_' || ch == '.' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
	}
	if !ok {
		c.Request.Header.Del("X-Request-ID")
	}
}
