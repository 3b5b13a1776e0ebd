package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"notify/e2e/stack"
)

// frame is one SSE event as it went over the wire: HasID tells whether it
// carried its own id field.
type frame struct {
	ID, Type, Data string
	HasID          bool
}

// frames is a stream read frame by frame.
type frames struct {
	Resp *http.Response
	C    chan frame
}

// openFrames opens a stream and reads it frame by frame (comments and
// retry fields dropped); it fails the test unless the answer is 200.
func openFrames(t *testing.T, r *stack.Proc, tok, query string, header http.Header) *frames {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v1/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		logs := r.Logs()
		t.Fatalf("stream %s: status %d %s\nread-api logs:\n%s", query, resp.StatusCode, b, logs[max(0, len(logs)-3000):])
	}
	f := &frames{Resp: resp, C: make(chan frame, 1<<14)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(f.C)
		br := bufio.NewReader(resp.Body)
		var cur frame
		data := []string{}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if cur.Type != "" || len(data) > 0 {
					cur.Data = strings.Join(data, "\n")
					f.C <- cur
				}
				cur, data = frame{}, data[:0]
			case strings.HasPrefix(line, "id: "):
				cur.ID, cur.HasID = line[4:], true
			case strings.HasPrefix(line, "event: "):
				cur.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return f
}

// next returns the next frame or fails the test after d.
func (f *frames) next(t *testing.T, d time.Duration) frame {
	t.Helper()
	select {
	case fr, ok := <-f.C:
		if !ok {
			t.Fatal("stream ended")
		}
		return fr
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return frame{}
}

// untilSynced returns the frames before stream.synced, and stream.synced.
func (f *frames) untilSynced(t *testing.T, d time.Duration) ([]frame, frame) {
	t.Helper()
	var before []frame
	for {
		fr := f.next(t, d)
		if fr.Type == "stream.synced" {
			return before, fr
		}
		before = append(before, fr)
	}
}

// env is an envelope as the read API sends it.
type env struct {
	ID     string          `json:"id"`
	Topic  string          `json:"topic"`
	Type   string          `json:"type"`
	Key    *string         `json:"key"`
	Data   json.RawMessage `json:"data"`
	Cursor string          `json:"cursor"`
}

func decodeEnv(t *testing.T, data string) env {
	t.Helper()
	var e env
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		t.Fatalf("envelope %q: %v", data, err)
	}
	return e
}

// publishKeyed publishes one notification with a key (nil: none) and returns its id.
func publishKeyed(t testing.TB, w *stack.Proc, tok string, topics []string, typ string, key any, data any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"topics": topics, "type": typ, "key": key, "data": data})
	status, _, resp, err := stack.Post(context.Background(), w.URL+"/v1/notifications", tok, string(body), nil)
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("publish: status %d err %v body %s", status, err, resp)
	}
	var out struct{ ID string }
	_ = json.Unmarshal(resp, &out)
	return out.ID
}

// getJSON GETs a read API path with a bearer token and returns status, headers and body.
func getJSON(t *testing.T, r *stack.Proc, tok, path string, q url.Values) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.URL+path+"?"+q.Encode(), nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type stateDoc struct {
	Topic   string `json:"topic"`
	Entries []env  `json:"entries"`
	Cursor  string `json:"cursor"`
}

type historyDoc struct {
	Topic  string  `json:"topic"`
	Events []env   `json:"events"`
	Next   *string `json:"next"`
	Head   string  `json:"head"`
}

func readStateDoc(t *testing.T, r *stack.Proc, tok, topic string) stateDoc {
	t.Helper()
	status, h, b := getJSON(t, r, tok, "/v1/state", url.Values{"topic": {topic}})
	if status != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("state of %s: %d %s %s", topic, status, h.Get("Content-Type"), b)
	}
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func readHistoryDoc(t *testing.T, r *stack.Proc, tok string, q url.Values) historyDoc {
	t.Helper()
	status, _, b := getJSON(t, r, tok, "/v1/history", q)
	if status != 200 {
		t.Fatalf("history %v: %d %s", q, status, b)
	}
	var d historyDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// board folds keyed events into key → data, as a client keeps state.
type board map[string]string

func (b board) apply(t *testing.T, e env) {
	t.Helper()
	if e.Key == nil {
		return
	}
	if string(e.Data) == "null" {
		delete(b, *e.Key)
		return
	}
	b[*e.Key] = string(e.Data)
}

func (b board) String() string {
	var parts []string
	for k, v := range b {
		parts = append(parts, fmt.Sprintf("%s=%s", k, v))
	}
	return strings.Join(parts, " ")
}
