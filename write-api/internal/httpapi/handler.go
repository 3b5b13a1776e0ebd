// Package httpapi is write-api's HTTP edge: authentication, body limits,
// decoding, and the mapping of outcomes to 202 or problem+json.
package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/notification"
	"notify/pkg/problem"
	"notify/write-api/internal/config"
	"notify/write-api/internal/ingest"
)

// Handler serves the publish endpoints.
type Handler struct {
	verifier *auth.Verifier
	service  *ingest.Service
	limits   ingest.Limits
	rate     *publisherLimiter
	metrics  *Metrics
	log      *zap.Logger
}

// New returns the handler.
func New(verifier *auth.Verifier, service *ingest.Service, limits ingest.Limits, log *zap.Logger) *Handler {
	return &Handler{verifier: verifier, service: service, limits: limits, log: log}
}

// WithRateLimit limits each publisher (token subject) to rl; over it the
// client gets 429 with Retry-After before its body is read.
func (h *Handler) WithRateLimit(rl RateLimit) *Handler {
	h.rate = newPublisherLimiter(rl)
	return h
}

// WithMetrics counts every publish request's outcome in m.
func (h *Handler) WithMetrics(m *Metrics) *Handler {
	h.metrics = m
	return h
}

// Mount adds the routes.
func (h *Handler) Mount(r gin.IRouter) {
	if h.metrics != nil {
		r = r.Group("", h.metrics.countPublish)
	}
	r.POST("/v1/notifications", h.publishOne)
	r.POST("/v1/notifications/batch", h.publishBatch)
}

type oneResponse struct {
	ID     string   `json:"id"`
	Topics []string `json:"topics"`
}

type batchRequest struct {
	Notifications []ingest.Request `json:"notifications"`
}

type batchResponse struct {
	IDs []string `json:"ids"`
}

func (h *Handler) publishOne(c *gin.Context) {
	var req ingest.Request
	call, claims, ok := h.prepare(c, &req)
	if !ok {
		return
	}
	if err := h.limits.Normalize(&req); err != nil {
		h.fail(c, err)
		return
	}
	call.Items = []ingest.Request{req}
	if acc, ok := h.publish(c, call, claims); ok {
		c.JSON(http.StatusAccepted, oneResponse{ID: acc.IDs[0], Topics: req.Topics})
	}
}

func (h *Handler) publishBatch(c *gin.Context) {
	var req batchRequest
	call, claims, ok := h.prepare(c, &req)
	if !ok {
		return
	}
	if err := h.limits.NormalizeBatch(req.Notifications); err != nil {
		h.fail(c, err)
		return
	}
	call.Items = req.Notifications
	if acc, ok := h.publish(c, call, claims); ok {
		c.JSON(http.StatusAccepted, batchResponse{IDs: acc.IDs})
	}
}

// prepare authenticates, checks the idempotency key and decodes the body
// into dst. It answers the client itself when it returns false.
func (h *Handler) prepare(c *gin.Context, dst any) (ingest.Call, *auth.Claims, bool) {
	claims, err := h.authenticate(c.Request)
	if err != nil {
		h.fail(c, err)
		return ingest.Call{}, nil, false
	}
	key := c.GetHeader("Idempotency-Key")
	if _, present := c.Request.Header["Idempotency-Key"]; present && !validIdempotencyKey(key) {
		h.fail(c, problem.New(problem.Invalid, "Idempotency-Key must be 1 to 255 visible ASCII characters"))
		return ingest.Call{}, nil, false
	}
	body, err := readJSONBody(c.Request, c.Writer)
	if err != nil {
		h.fail(c, err)
		return ingest.Call{}, nil, false
	}
	if err := decodeStrict(body, dst); err != nil {
		h.fail(c, err)
		return ingest.Call{}, nil, false
	}
	call := ingest.Call{Publisher: claims.Subject, IdempotencyKey: key}
	if key != "" { // the hash tells a retry from a different request under the same key
		sum := sha256.Sum256(append([]byte(c.Request.URL.Path+"\n"), body...))
		call.BodyHash = hex.EncodeToString(sum[:])
	}
	return call, claims, true
}

func (h *Handler) authenticate(r *http.Request) (*auth.Claims, error) {
	tok, err := auth.FromRequest(r, false)
	if err != nil {
		return nil, problem.Wrap(problem.Unauthenticated, err, "send Authorization: Bearer <token>")
	}
	claims, err := h.verifier.Verify(tok)
	if err != nil {
		return nil, problem.Wrap(problem.Unauthenticated, err, auth.Detail(err))
	}
	if !claims.HasScope(auth.ScopePublish) {
		return nil, problem.New(problem.Forbidden, "the token lacks the %s scope", auth.ScopePublish)
	}
	if ok, wait := h.rate.allow(claims.Subject, time.Now()); !ok {
		return nil, &problem.Error{Code: problem.TooManyRequests, Detail: "publish rate limit exceeded for this publisher", RetryAfter: wait}
	}
	return claims, nil
}

// publish checks the broadcast scope and runs the call; on failure it has
// answered the client.
func (h *Handler) publish(c *gin.Context, call ingest.Call, claims *auth.Claims) (ingest.Accepted, bool) {
	if needsBroadcast(call.Items) && !claims.HasScope(auth.ScopeBroadcast) {
		h.fail(c, problem.New(problem.Forbidden, "publishing to %s needs the %s scope", notification.Broadcast, auth.ScopeBroadcast))
		return ingest.Accepted{}, false
	}
	acc, err := h.service.Publish(c.Request.Context(), call)
	if err != nil {
		h.fail(c, err)
		return ingest.Accepted{}, false
	}
	if acc.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	return acc, true
}

func (h *Handler) fail(c *gin.Context, err error) {
	status := problem.Write(c.Writer, err)
	if status >= 500 {
		h.log.Warn("publish failed", zap.Int("status", status), zap.Error(err))
	}
	c.Abort()
}

func readJSONBody(r *http.Request, w http.ResponseWriter) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, problem.New(problem.UnsupportedMedia, "send Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, config.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, problem.New(problem.TooLarge, "the body exceeds %d bytes", config.MaxBodyBytes)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) { // the server's ReadTimeout, which bounds a slow sender
		w.Header().Set("Connection", "close")
		return nil, problem.Wrap(problem.Timeout, err, "the body did not arrive in time")
	}
	if err != nil {
		return nil, problem.Wrap(problem.Invalid, err, "the body could not be read")
	}
	return body, nil
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func needsBroadcast(items []ingest.Request) bool {
	for _, it := range items {
		if slices.Contains(it.Topics, notification.Broadcast) {
			return true
		}
	}
	return false
}
