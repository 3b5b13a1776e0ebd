// Package httpapi is read-api's HTTP edge: it authenticates a stream
// request, decides its topics, enforces per-connection and per-subject
// limits, and hands the connection to the hub and a stream.
package httpapi

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/httpserver"
	"notify/pkg/notification"
	"notify/pkg/problem"
	"notify/read-api/internal/hangup"
	"notify/read-api/internal/hub"
	"notify/read-api/internal/stream"
)

// JoinTimeout bounds the wait for Redis to confirm a stream's
// subscriptions and read its positions; past it the client gets 503. It
// leaves a margin under the 3 s a refusal may take (docs/api.md), as
// write-api's Redis budget does.
const JoinTimeout = 2500 * time.Millisecond

// Limits are the per-connection settings from config.
type Limits struct {
	MaxTopics            int
	MaxStreamsPerSubject int
	MaxConnectionAge     time.Duration
	// MaxSetups bounds the streams being set up at once; 0 means
	// defaultMaxSetups.
	MaxSetups int
	Stream    stream.Limits
}

// Drainer tells whether the pod is draining and when a stream must go.
type Drainer interface {
	Draining() bool
	// Register returns a channel closed when the stream should end (and
	// onStop, if not nil, called then), and a release func to call when it
	// has.
	Register(onStop func()) (<-chan struct{}, func())
}

// Handler serves GET /v1/stream.
type Handler struct {
	verifier *auth.Verifier
	hub      *hub.Hub
	history  stream.History
	limits   Limits
	subjects *subjectLimiter
	setups   *setupLimiter
	drain    Drainer
	hangups  hangup.Watcher
	state    stream.StateReader // nil: snapshot=true is ignored
	metrics  *Metrics
	log      *zap.Logger
}

// Deps is what the handler is built from; every field but State is
// required.
type Deps struct {
	Verifier *auth.Verifier
	Hub      *hub.Hub
	History  stream.History
	State    stream.StateReader // nil: snapshot=true is ignored; else each stream may start with its topics' keyed state
	Limits   Limits
	Drain    Drainer
	Hangups  hangup.Watcher
	Metrics  *Metrics
	Log      *zap.Logger
}

// New returns the handler.
func New(d Deps) *Handler {
	return &Handler{
		verifier: d.Verifier, hub: d.Hub, history: d.History, state: d.State, limits: d.Limits,
		subjects: newSubjectLimiter(d.Limits.MaxStreamsPerSubject), setups: newSetupLimiter(d.Limits.MaxSetups), drain: d.Drain, hangups: d.Hangups, metrics: d.Metrics, log: d.Log,
	}
}

// Mount adds the route.
func (h *Handler) Mount(r gin.IRouter) { r.GET("/v1/stream", h.stream) }

// stream serves one stream request in four steps, each of which answers
// the client itself when it refuses: admit it, open the stream (hub and
// positions), take the connection from net/http, and start the stream's
// lifecycle. From its join to the end of the replay the stream holds a
// setup slot.
func (h *Handler) stream(c *gin.Context) {
	a, ok := h.admit(c)
	if !ok {
		return
	}
	s, ok := h.open(c, &a)
	if !ok {
		return
	}
	defer a.setupDone() // start gives it back sooner, after the replay
	hc, ok := h.takeConn(c, s, a)
	if !ok {
		return
	}
	h.start(c, s, a, hc)
}

// admission is what an admitted request streams with.
type admission struct {
	claims   *auth.Claims
	topics   []string
	subject  string             // the stream keeps this, not the whole claims
	snapshot stream.StateReader // nil: no snapshot
	// setupDone gives back the setup slot; idempotent.
	setupDone func()
}

// admit refuses the request when the pod drains, the token or parameters
// are bad, or the subject has too many streams; otherwise the subject's
// slot is taken and the caller must give it back.
func (h *Handler) admit(c *gin.Context) (admission, bool) {
	r := c.Request
	if h.drain.Draining() {
		h.refuse(c, refusedDraining, &problem.Error{Code: problem.Unavailable, Detail: "this pod is draining; reconnect", RetryAfter: time.Second})
		return admission{}, false
	}
	claims, topics, err := h.authorize(r)
	if err != nil {
		h.fail(c, err)
		return admission{}, false
	}
	snapshot, err := h.snapshotParam(r)
	if err != nil {
		h.fail(c, err)
		return admission{}, false
	}
	a := admission{claims: claims, topics: topics, subject: claims.Subject, snapshot: snapshot}
	if !h.subjects.acquire(a.subject) {
		h.refuse(c, refusedSubject, &problem.Error{Code: problem.TooManyRequests, Detail: "too many open streams for this subject", RetryAfter: 5 * time.Second})
		return admission{}, false
	}
	return a, true
}

// open takes a setup slot, waiting for one while the pod sets up as many
// streams as it may, then makes the stream and joins it to the hub (see
// join), all within JoinTimeout: a burst of streams is set up a bounded
// number at a time, and no request waits longer than a slow Redis would
// make it. On success a.setupDone gives the slot back; on failure the
// subject's slot is released and the client answered, unless it left.
func (h *Handler) open(c *gin.Context, a *admission) (*stream.Stream, bool) {
	r := c.Request
	ctx, cancel := context.WithTimeout(r.Context(), JoinTimeout)
	defer cancel()
	setupDone, err := h.setups.acquire(ctx)
	var s *stream.Stream
	if err == nil {
		s = stream.New(a.topics, h.history, h.limits.Stream, h.log)
		if err = h.join(ctx, s, a.topics); err != nil {
			setupDone()
		}
	}
	if err == nil {
		a.setupDone = setupDone
		return s, true
	}
	h.subjects.release(a.subject)
	switch {
	case r.Context().Err() != nil: // the client left: nobody to answer, nothing failed
		closeUnanswered(c.Writer)
		httpserver.SetOutcome(c, httpserver.Outcome{Note: "client went away before its stream started"})
		c.Abort()
	case setupDone == nil:
		h.refuse(c, refusedBusy, &problem.Error{Code: problem.Unavailable, Detail: "this pod is busy starting other streams; reconnect", RetryAfter: time.Second})
	default:
		h.refuse(c, refusedUnavailable, &problem.Error{Code: problem.Unavailable, Detail: "Redis is unavailable; retry later", RetryAfter: time.Second, Err: err})
	}
	return nil, false
}

// takeConn takes the connection from net/http: a stream lives for an
// hour, so its per-connection buffers and the handler's goroutine are
// freed; at rest the stream is then only memory and a timer
// (stream.Detached). A writer that cannot be hijacked gives nil and the
// stream writes through net/http, its handler waiting for its end. On
// failure the stream's registrations are undone.
func (h *Handler) takeConn(c *gin.Context, s *stream.Stream, a admission) (*hijacked, bool) {
	hc, err := hijack(c.Writer)
	if err != nil && !errors.Is(err, errCannotHijack) {
		h.hub.Leave(s, a.topics)
		h.subjects.release(a.subject)
		httpserver.SetOutcome(c, httpserver.Outcome{Note: "stream refused: " + err.Error()})
		return nil, false
	}
	return hc, true
}

// start registers the stream with the drain and the metrics and runs it
// (lifecycle.run), on the hijacked connection hc or, when hc is nil,
// through net/http. Its lifecycle's end undoes every registration.
func (h *Handler) start(c *gin.Context, s *stream.Stream, a admission, hc *hijacked) {
	r := c.Request
	drained, release := h.drain.Register(s.Wake)
	h.metrics.Connections.Inc()
	h.metrics.Opened.Inc()
	l := &lifecycle{h: h, s: s, topics: a.topics, subject: a.subject, release: release}
	opts := stream.Options{
		LastEventID: lastEventID(r),
		Expiry:      a.claims.ExpiresAt.Time,
		MaxAge:      jitter(h.limits.MaxConnectionAge),
		Drain:       drained,
		Snapshot:    a.snapshot,
	}
	l.run(c, hc, opts, a.setupDone)
}

// join subscribes the stream's topics and reads their positions, within
// ctx's deadline: the last steps that can fail before the response starts.
func (h *Handler) join(ctx context.Context, s *stream.Stream, topics []string) error {
	if err := h.hub.Join(ctx, s, topics); err != nil {
		return err
	}
	if err := s.Open(ctx); err != nil {
		h.hub.Leave(s, topics)
		return err
	}
	return nil
}

// lastEventID is the client's cursor: the Last-Event-ID header, or the
// lastEventId parameter a new EventSource can send.
func lastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("lastEventId")
}

// authorize verifies the token and picks the stream's topics: those asked
// for (each must be in the token's topics claim) or, by default, all of
// the claim. Every stream also receives broadcast.
func (h *Handler) authorize(r *http.Request) (*auth.Claims, []string, error) {
	claims, err := verify(h.verifier, r)
	if err != nil {
		return nil, nil, err
	}
	asked := r.URL.Query()["topic"]
	if len(asked) > h.limits.MaxTopics {
		return nil, nil, problem.New(problem.Invalid, "at most %d topics per stream, got %d", h.limits.MaxTopics, len(asked))
	}
	topics, err := notification.NormalizeTopics(asked)
	if err != nil {
		return nil, nil, problem.New(problem.Invalid, "topic: %v", err)
	}
	if len(asked) == 0 {
		if topics, err = notification.NormalizeTopics(claims.Topics); err != nil {
			return nil, nil, problem.Wrap(problem.Unauthenticated, err, "the token's topics claim holds an invalid topic")
		}
		if len(topics) > h.limits.MaxTopics {
			return nil, nil, problem.New(problem.Invalid, "the token grants %d topics, more than %d per stream: choose with ?topic=", len(topics), h.limits.MaxTopics)
		}
	}
	for _, t := range topics {
		if t != notification.Broadcast && !slices.Contains(claims.Topics, t) {
			return nil, nil, problem.New(problem.Forbidden, "the token does not grant topic %q", t)
		}
	}
	if !slices.Contains(topics, notification.Broadcast) {
		topics = append(topics, notification.Broadcast)
	}
	return claims, topics, nil
}

// refuse answers a refused stream and counts it by reason. A busy pod's
// refusals are counted only: in a reconnect storm a line each would flood
// the log.
func (h *Handler) refuse(c *gin.Context, reason int, err error) {
	h.metrics.refused[reason].Inc()
	if reason == refusedBusy {
		problem.Write(c.Writer, err)
		c.Abort()
		return
	}
	h.fail(c, err)
}

func (h *Handler) fail(c *gin.Context, err error) {
	if status := problem.Write(c.Writer, err); status >= 500 {
		h.log.Warn("stream refused", zap.Int("status", status), zap.Error(err))
	}
	c.Abort()
}

// jitter spreads d by ±10% so streams opened together do not all close
// together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// verify checks the request's token, from the Authorization header or the
// access_token parameter (browsers' EventSource cannot send headers).
func verify(v *auth.Verifier, r *http.Request) (*auth.Claims, error) {
	tok, err := auth.FromRequest(r, true)
	if err != nil {
		return nil, problem.Wrap(problem.Unauthenticated, err, "send Authorization: Bearer <token> or access_token=<token>")
	}
	claims, err := v.Verify(tok)
	if err != nil {
		return nil, problem.Wrap(problem.Unauthenticated, err, auth.Detail(err))
	}
	return claims, nil
}
