package deploytest

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
)

type sseEvent struct {
	id, data string
}

// stream is an open text/event-stream response; events is closed when it ends.
type stream struct {
	resp   *http.Response
	events chan sseEvent
}

// openStream GETs url as an EventSource would, resuming after lastEventID when set.
func openStream(ctx context.Context, t *testing.T, url string, header http.Header, lastEventID string) *stream {
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("open stream: status %s", resp.Status)
	}
	s := &stream{resp: resp, events: make(chan sseEvent)}
	go s.read(ctx)
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
