package deploytest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

type sseEvent struct {
	id, data string
}

// stream is a text/event-stream response; events is closed when it ends.
type stream struct {
	resp   *http.Response // set before head is closed
	head   chan error     // receives the request's outcome once the response head arrives
	events chan sseEvent
}

// headTimeout bounds the wait for a stream's response head: the pod sends it
// as soon as the subscriptions are live, in milliseconds on loopback.
const headTimeout = 5 * time.Second

// openStream GETs url as an EventSource would, resuming after lastEventID
// when set, and waits for the response head.
func openStream(ctx context.Context, t *testing.T, url string, header http.Header, lastEventID string) *stream {
	t.Helper()
	s := startStream(ctx, t, url, header, lastEventID)
	select {
	case err := <-s.head:
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("open stream: no response head before the test deadline")
	case <-time.After(headTimeout):
		t.Fatalf("open stream: no response head within %v (held by a buffering proxy?)", headTimeout)
	}
	return s
}

// startStream sends the request and returns at once: a buffering proxy may
// hold even the response head, and the caller can still wait for events.
func startStream(ctx context.Context, t *testing.T, url string, header http.Header, lastEventID string) *stream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	req.Header.Set("Accept", "text/event-stream")
	// Asked explicitly so that a compressed (hence buffered) answer would show.
	req.Header.Set("Accept-Encoding", "gzip")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	s := &stream{head: make(chan error, 1), events: make(chan sseEvent)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			err = fmt.Errorf("status %s", resp.Status)
		}
		if err != nil {
			close(s.events)
			s.head <- err
			return
		}
		defer resp.Body.Close()
		s.resp = resp
		s.head <- nil
		s.read(ctx)
	}()
	return s
}

func (s *stream) read(ctx context.Context) {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"): // comment, e.g. a heartbeat
		case line != "":
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "data":
				ev.data = value
			}
		case ev != (sseEvent{}): // a blank line dispatches the event
			select {
			case s.events <- ev:
			case <-ctx.Done():
				return
			}
			ev = sseEvent{}
		}
	}
}

// next returns the next event, failing the test if the stream ends first.
func (s *stream) next(ctx context.Context, t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended while an event was expected")
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no event before the test deadline")
	}
	return sseEvent{}
}

// waitEnd waits for the stream to end, failing on any further event.
func (s *stream) waitEnd(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("unexpected event %+v on a stream whose pod stopped", ev)
		}
	case <-ctx.Done():
		t.Fatal("stream still open after its pod stopped")
	}
}
