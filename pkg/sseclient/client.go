package sseclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultReconnectDelay = 3 * time.Second
	defaultMaxDelay       = 30 * time.Second
)

// Config configures a Stream. URL or NewRequest is required.
type Config struct {
	// HTTPClient sends the requests; default http.DefaultClient. Its
	// Timeout must be 0, or it cuts every stream after that time.
	HTTPClient *http.Client
	// URL and Header describe every attempt's request when NewRequest is nil.
	URL    string
	Header http.Header
	// NewRequest, if set, builds the request of every attempt (the first
	// and each reconnection), so a caller can refresh a token or put
	// lastEventID into the URL. The request must use ctx. The stream then
	// sets Accept and Cache-Control, and Last-Event-ID when lastEventID is
	// not empty and the request has no such header.
	NewRequest func(ctx context.Context, lastEventID string) (*http.Request, error)
	// LastEventID is sent on the first attempt already (a resumed stream).
	LastEventID string

	// ReconnectDelay is the reconnection time until the server sends
	// retry:; default 3 s. Consecutive failed attempts double it.
	ReconnectDelay time.Duration
	// MaxDelay caps the server's retry:, the backoff and Retry-After;
	// default 30 s.
	MaxDelay time.Duration
	// Jitter in [0, 1] shortens each wait by a random fraction up to it,
	// so thousands of clients do not reconnect in one wave.
	Jitter float64
	// RetryResponse, if set, is asked about a response that is not a 200
	// text/event-stream; true retries it with backoff and Retry-After
	// instead of failing (see RetryUnavailable). 204 always fails.
	RetryResponse func(*http.Response) bool
	// IdleTimeout, if > 0, drops and reconnects a connection on which no
	// byte arrived for this long (set it above the heartbeat interval).
	IdleTimeout time.Duration

	// Comments delivers comment lines (heartbeats) as events.
	Comments bool
	// MaxLineSize and BufferSize: see ParseOptions.
	MaxLineSize int
	BufferSize  int

	// OnOpen, if set, is called once the response of an attempt has been
	// accepted, before its body is read; it must not read the body.
	OnOpen func(resp *http.Response)
	// OnRetry, if set, is called before waiting to reconnect, with the
	// reason (io.EOF when the server ended the stream) and the wait.
	// A non-nil return stops the stream with that error.
	OnRetry func(err error, wait time.Duration) error
}

func (c *Config) setDefaults() {
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.ReconnectDelay <= 0 {
		c.ReconnectDelay = defaultReconnectDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = defaultMaxDelay
	}
}

func (c *Config) validate() error {
	if c.URL == "" && c.NewRequest == nil {
		return errors.New("sseclient: Config needs URL or NewRequest")
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		return fmt.Errorf("sseclient: Jitter %v outside [0, 1]", c.Jitter)
	}
	return nil
}

// Stream is one logical event stream: a sequence of HTTP connections
// resumed by Last-Event-ID. Its counters are safe for concurrent use.
type Stream struct {
	cfg         Config
	running     atomic.Bool
	reconnects  atomic.Int64
	connections atomic.Int64

	mu     sync.Mutex
	lastID string
}

// NewStream validates cfg and returns a stream that is not yet connected.
func NewStream(cfg Config) (*Stream, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Stream{cfg: cfg, lastID: cfg.LastEventID}, nil
}

// Reconnects counts the attempts made after the first one.
func (s *Stream) Reconnects() int64 { return s.reconnects.Load() }

// Connections counts the attempts whose response was accepted.
func (s *Stream) Connections() int64 { return s.connections.Load() }

// LastEventID is the ID the stream would send on its next reconnection.
func (s *Stream) LastEventID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

func (s *Stream) setLastID(id string) {
	s.mu.Lock()
	if s.lastID != id {
		s.lastID = id
	}
	s.mu.Unlock()
}

// Run connects and calls fn for every event, in order, on its own
// goroutine, reconnecting until ctx is done (it then returns ctx.Err()),
// fn returns an error (returned as is), the connection fails (an error
// wrapping ErrFailed, such as *ResponseError), or OnRetry says stop.
// Every connection is closed before Run returns.
func (s *Stream) Run(ctx context.Context, fn func(Event) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	var p *Parser
	failures := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.reconnects.Add(1)
		}
		opened, retry, err := s.attempt(ctx, &p, fn)
		if p != nil {
			s.setLastID(p.LastEventID())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retry {
			return err
		}
		if opened {
			failures = 0
		} else {
			failures++
		}
		base := s.cfg.ReconnectDelay
		if p != nil {
			if r, ok := p.Retry(); ok {
				base = r
			}
		}
		var retryAfter time.Duration
		if re := (*ResponseError)(nil); errors.As(err, &re) {
			retryAfter = re.RetryAfter
		}
		wait := waitFor(base, failures, retryAfter, s.cfg.MaxDelay, s.cfg.Jitter)
		if s.cfg.OnRetry != nil {
			if err := s.cfg.OnRetry(err, wait); err != nil {
				return err
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Start runs the stream on a new goroutine and delivers its events on a
// channel of the given capacity. The channel is closed when the stream
// ends; Run's result is then available on the error channel.
func (s *Stream) Start(ctx context.Context, capacity int) (<-chan Event, <-chan error) {
	events := make(chan Event, capacity)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		errc <- s.Run(ctx, func(ev Event) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(errc)
	}()
	return events, errc
}

// attempt makes one connection and reads it until it ends.
func (s *Stream) attempt(ctx context.Context, pp **Parser, fn func(Event) error) (opened, retry bool, err error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	req, err := s.request(actx)
	if err != nil {
		return false, false, err
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, true, err
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header.Get("Content-Type")) {
		retry := resp.StatusCode != http.StatusNoContent &&
			s.cfg.RetryResponse != nil && s.cfg.RetryResponse(resp)
		return false, retry, newResponseError(resp)
	}
	s.connections.Add(1)
	if s.cfg.OnOpen != nil {
		s.cfg.OnOpen(resp)
	}

	var body io.Reader = resp.Body
	if s.cfg.IdleTimeout > 0 {
		ir := &idleReader{r: resp.Body, d: s.cfg.IdleTimeout}
		ir.t = time.AfterFunc(ir.d, func() { cancel(ErrIdle) })
		defer ir.t.Stop()
		body = ir
	}
	p := *pp
	if p == nil {
		p = NewParser(body, &ParseOptions{
			Comments:    s.cfg.Comments,
			MaxLineSize: s.cfg.MaxLineSize,
			BufferSize:  s.cfg.BufferSize,
			LastEventID: s.LastEventID(),
		})
		*pp = p
	} else {
		p.Reset(body)
	}

	for {
		ev, err := p.Next()
		if err != nil {
			if errors.Is(err, ErrLineTooLong) {
				return true, false, fmt.Errorf("%w: %w", ErrFailed, err)
			}
			if cause := context.Cause(actx); errors.Is(cause, ErrIdle) {
				err = ErrIdle
			}
			return true, true, err
		}
		if !ev.Comment {
			s.setLastID(ev.ID)
		}
		if err := fn(ev); err != nil {
			return true, false, err
		}
	}
}

func (s *Stream) request(ctx context.Context) (*http.Request, error) {
	lastID := s.LastEventID()
	var req *http.Request
	var err error
	if s.cfg.NewRequest != nil {
		req, err = s.cfg.NewRequest(ctx, lastID)
		if err == nil && req == nil {
			err = errors.New("NewRequest returned nil")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
		if err == nil && s.cfg.Header != nil {
			req.Header = s.cfg.Header.Clone()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sseclient: build request: %w", err)
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" && req.Header.Get("Last-Event-ID") == "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return req, nil
}

// idleReader pushes its timer back on every read that returns data.
type idleReader struct {
	r io.Reader
	d time.Duration
	t *time.Timer
}

func (r *idleReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
