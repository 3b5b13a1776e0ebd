package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"notify/pkg/auth"
	"notify/pkg/notification"
	"notify/pkg/problem"
	"notify/read-api/internal/cursor"
	"notify/read-api/internal/stream"
)

// History page sizes: the limit parameter's default and maximum.
const (
	defaultHistoryLimit = 20
	maxHistoryLimit     = 100
)

// stateReadAttempts bounds how often a state read starts over when the
// topic's history was lost or rewritten while it was read in pages.
const stateReadAttempts = 3

// HistoryReader reads a page of a topic's history, newest first.
type HistoryReader interface {
	Newest(ctx context.Context, topic string, before uint64, limit int) (notification.HistoryPage, error)
}

// Reads serves GET /v1/history and GET /v1/state: what a topic was sent,
// and its current keyed state, each with a cursor a stream can resume
// from.
type Reads struct {
	verifier *auth.Verifier
	history  HistoryReader
	state    stream.StateReader
	log      *zap.Logger
}

// NewReads returns the handler.
func NewReads(verifier *auth.Verifier, history HistoryReader, state stream.StateReader, log *zap.Logger) *Reads {
	return &Reads{verifier: verifier, history: history, state: state, log: log}
}

// Mount adds the routes.
func (h *Reads) Mount(r gin.IRouter) {
	r.GET("/v1/history", h.readHistory)
	r.GET("/v1/state", h.readState)
}

type historyResponse struct {
	Topic  string            `json:"topic"`
	Events []json.RawMessage `json:"events"`
	Next   *string           `json:"next"`
	Head   string            `json:"head"`
}

type stateResponse struct {
	Topic   string            `json:"topic"`
	Entries []json.RawMessage `json:"entries"`
	Cursor  string            `json:"cursor"`
}

func (h *Reads) readHistory(c *gin.Context) {
	topic, err := h.authorize(c.Request)
	if err != nil {
		h.fail(c, err)
		return
	}
	limit, before, hasBefore, err := historyParams(c.Request, topic)
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), JoinTimeout)
	defer cancel()
	page, err := h.history.Newest(ctx, topic, before.Seq, limit)
	if err != nil {
		h.fail(c, unavailable(err))
		return
	}
	resp := historyResponse{Topic: topic, Events: []json.RawMessage{}, Head: cursor.Of(topic, page.Head)}
	if hasBefore && before.Zero() {
		h.write(c, resp) // before the topic's first event: nothing is older
		return
	}
	if hasBefore && gone(before, page) {
		h.fail(c, problem.New(problem.Gone, "the history this cursor points into no longer exists (expired or lost); read from the head"))
		return
	}
	for _, m := range page.Events {
		resp.Events = append(resp.Events, withCursor(m.Envelope, cursor.Of(topic, m.Pos)))
	}
	if page.More && len(page.Events) > 0 {
		next := cursor.Of(topic, page.Events[len(page.Events)-1].Pos)
		resp.Next = &next
	}
	h.write(c, resp)
}

// historyParams reads limit and before, and whether there is a before.
func historyParams(r *http.Request, topic string) (limit int, before notification.Position, hasBefore bool, err error) {
	q := r.URL.Query()
	limit = defaultHistoryLimit
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > maxHistoryLimit {
			return 0, before, false, problem.New(problem.Invalid, "limit: want one integer from 1 to %d", maxHistoryLimit)
		}
		limit = n
	}
	vs, ok := q["before"]
	if !ok {
		return limit, before, false, nil
	}
	if len(vs) != 1 {
		return 0, before, false, problem.New(problem.Invalid, "before: at most one cursor")
	}
	cur, err := cursor.Parse(vs[0])
	if err != nil {
		return 0, before, false, problem.Wrap(problem.Invalid, err, "before: unreadable cursor")
	}
	before, ok = cur[cursor.KeyOf(topic)]
	if !ok {
		return 0, before, false, problem.New(problem.Invalid, "before: the cursor does not cover topic %q", topic)
	}
	return limit, before, true, nil
}

// gone reports whether the history before points into no longer exists:
// the topic's epoch changed (expiry, data loss) or a failover rewrote it.
func gone(before notification.Position, page notification.HistoryPage) bool {
	head := page.Head
	switch {
	case head.Zero(), head.Epoch != before.Epoch, before.Seq > head.Seq:
		return true
	case before.Link == 0:
		return false
	case page.BeforeLink != 0 && page.BeforeLink != before.Link:
		return true
	}
	return before.Seq == head.Seq && head.Link != before.Link
}

// withCursor adds "cursor" to an envelope (a JSON object).
func withCursor(env []byte, cur string) json.RawMessage {
	out := make([]byte, 0, len(env)+len(cur)+12)
	out = append(out, env[:len(env)-1]...)
	out = append(out, `,"cursor":"`...)
	out = append(out, cur...)
	return append(out, `"}`...)
}

func (h *Reads) readState(c *gin.Context) {
	topic, err := h.authorize(c.Request)
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), JoinTimeout)
	defer cancel()
	resp := stateResponse{Topic: topic}
	for attempt := 1; ; attempt++ {
		resp.Entries = []json.RawMessage{}
		var pos notification.Position
		pos, err = h.state.Read(ctx, topic, func(ms []notification.Message) error {
			for _, m := range ms {
				resp.Entries = append(resp.Entries, m.Envelope)
			}
			return nil
		})
		if err == nil {
			resp.Cursor = cursor.Of(topic, pos)
			break
		}
		if !errors.Is(err, notification.ErrStateMoved) || attempt == stateReadAttempts {
			h.fail(c, unavailable(err))
			return
		}
	}
	h.write(c, resp)
}

// authorize verifies the token and returns the one topic asked for, which
// the token's topics claim must grant (broadcast is everyone's), unless
// the token has the read scope.
func (h *Reads) authorize(r *http.Request) (string, error) {
	claims, err := verify(h.verifier, r)
	if err != nil {
		return "", err
	}
	topics := r.URL.Query()["topic"]
	if len(topics) != 1 {
		return "", problem.New(problem.Invalid, "topic: want exactly one topic parameter, got %d", len(topics))
	}
	topic := topics[0]
	if err := notification.ValidateTopic(topic); err != nil {
		return "", problem.New(problem.Invalid, "topic: %v", err)
	}
	if topic != notification.Broadcast && !slices.Contains(claims.Topics, topic) && !claims.HasScope(auth.ScopeRead) {
		return "", problem.New(problem.Forbidden, "the token does not grant topic %q", topic)
	}
	return topic, nil
}

func (h *Reads) write(c *gin.Context, v any) {
	c.Header("Content-Type", "application/json")
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	enc := json.NewEncoder(c.Writer)
	enc.SetEscapeHTML(false) // entries are sent as stored
	if err := enc.Encode(v); err != nil {
		h.log.Debug("read response not written", zap.Error(err))
	}
}

func (h *Reads) fail(c *gin.Context, err error) {
	if status := problem.Write(c.Writer, err); status >= 500 {
		h.log.Warn("read refused", zap.Int("status", status), zap.Error(err))
	}
	c.Abort()
}

// unavailable is the answer to a Redis error: 503 with Retry-After.
func unavailable(err error) error {
	return &problem.Error{Code: problem.Unavailable, Detail: "Redis is unavailable; retry later", RetryAfter: time.Second, Err: err}
}
