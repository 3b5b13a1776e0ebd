package sseclient

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func msg(id, data string) Event { return Event{ID: id, Type: DefaultEventType, Data: data} }

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		opts      *ParseOptions
		want      []Event
		lastID    string
		retry     time.Duration
		retrySet  bool // a valid retry was seen (implied by retry != 0)
		lineLimit bool
	}{
		// WHATWG examples (HTML Living Standard, "Server-sent events", 9.2.5/9.2.6).
		{
			name: "whatwg stock ticker",
			in:   "data: YHOO\ndata: +2\ndata: 10\n\n",
			want: []Event{msg("", "YHOO\n+2\n10")},
		},
		{
			name:   "whatwg comment, id, empty id, unterminated last block",
			in:     ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
			want:   []Event{msg("1", "first event"), msg("", "second event")},
			lastID: "",
		},
		{
			name: "whatwg empty data, newline data, discarded tail",
			in:   "data\n\ndata\ndata\n\ndata:",
			want: []Event{msg("", ""), msg("", "\n")},
		},
		{
			name: "whatwg optional space",
			in:   "data:test\n\ndata: test\n\n",
			want: []Event{msg("", "test"), msg("", "test")},
		},
		{
			name: "whatwg event types",
			in:   "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
			want: []Event{
				{Type: "add", Data: "73857293"},
				{Type: "remove", Data: "2153"},
				{Type: "add", Data: "113411"},
			},
		},
		{
			name: "whatwg first/second/third message",
			in:   "data: This is the first message.\n\ndata: This is the second message, it\ndata: has two lines.\n\ndata: This is the third message.\n\n",
			want: []Event{
				msg("", "This is the first message."),
				msg("", "This is the second message, it\nhas two lines."),
				msg("", "This is the third message."),
			},
		},
		// Line endings.
		{name: "LF", in: "data: a\ndata: b\n\n", want: []Event{msg("", "a\nb")}},
		{name: "CR", in: "data: a\rdata: b\r\r", want: []Event{msg("", "a\nb")}},
		{name: "CRLF", in: "data: a\r\ndata: b\r\n\r\n", want: []Event{msg("", "a\nb")}},
		{name: "mixed", in: "data: a\rdata: b\ndata: c\r\n\r", want: []Event{msg("", "a\nb\nc")}},
		{name: "CR CRLF is line then blank", in: "data: a\r\r\n", want: []Event{msg("", "a")}},
		{name: "LF CR is line then blank", in: "data: a\n\r", want: []Event{msg("", "a")}},
		{name: "CRLF not doubled", in: "data: a\r\n\r\ndata: b\r\n\r\n", want: []Event{msg("", "a"), msg("", "b")}},
		// BOM.
		{name: "leading BOM", in: "\xEF\xBB\xBFdata: x\n\n", want: []Event{msg("", "x")}},
		{name: "only one BOM stripped", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n", want: []Event{msg("", "y")}},
		{name: "BOM later is data", in: "data: \xEF\xBB\xBFx\n\n", want: []Event{msg("", "\uFEFFx")}},
		{name: "BOM prefix only", in: "\xEF\xBBdata: x\n\n", want: nil},
		// Fields.
		{name: "one space stripped", in: "data:  two\n\n", want: []Event{msg("", " two")}},
		{name: "value keeps colons", in: "data: a: b:c\n\n", want: []Event{msg("", "a: b:c")}},
		{name: "field without colon", in: "data\ndata\n\n", want: []Event{msg("", "\n")}},
		{name: "event without colon is message", in: "event: x\nevent\ndata: d\n\n", want: []Event{msg("", "d")}},
		{name: "unknown fields ignored", in: "foo: bar\nDATA: no\ndata: yes\n\n", want: []Event{msg("", "yes")}},
		{name: "tab is not stripped", in: "data:\tx\n\n", want: []Event{msg("", "\tx")}},
		{name: "trailing newline kept once", in: "data: a\ndata:\n\n", want: []Event{msg("", "a\n")}},
		{name: "no data, no dispatch, type reset", in: "event: x\n\ndata: d\n\n", want: []Event{msg("", "d")}},
		{name: "unterminated event discarded", in: "data: a\n", want: nil},
		{name: "unterminated line discarded", in: "data: a\n\ndata: b", want: []Event{msg("", "a")}},
		{name: "invalid utf-8 replaced", in: "data: \xffa\n\n", want: []Event{msg("", "\uFFFDa")}},
		// id.
		{name: "id persists", in: "id: 1\ndata: a\n\ndata: b\n\n", want: []Event{msg("1", "a"), msg("1", "b")}, lastID: "1"},
		{name: "id with NUL ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []Event{msg("1", "a"), msg("1", "b")}, lastID: "1"},
		{name: "id-only block commits", in: "id: 7\n\n", want: nil, lastID: "7"},
		{name: "unterminated id not committed", in: "id: 1\n\nid: 2\n", want: nil, lastID: "1"},
		{name: "empty id resets", in: "id: 1\n\nid:\n\n", want: nil, lastID: ""},
		{name: "seeded id", in: "data: a\n\n", opts: &ParseOptions{LastEventID: "s"}, want: []Event{msg("s", "a")}, lastID: "s"},
		// retry.
		{name: "retry digits", in: "retry: 1500\n\n", retry: 1500 * time.Millisecond},
		{name: "retry zero", in: "retry: 7\nretry: 0\n\n", retry: 0, retrySet: true},
		{name: "retry non-digits ignored", in: "retry: 10\nretry: 1a\nretry: -5\nretry: +5\nretry: 1.5\nretry:\nretry:  20\n\n", retry: 10 * time.Millisecond},
		{name: "retry saturates", in: "retry: 99999999999999999999999\n\n", retry: time.Duration(1<<63-1) / time.Millisecond * time.Millisecond},
		{name: "retry alone dispatches nothing", in: "retry: 5\ndata: a\n\n", want: []Event{msg("", "a")}, retry: 5 * time.Millisecond},
		// Comments.
		{name: "comments ignored", in: ":hb\n: hb\ndata: a\n\n", want: []Event{msg("", "a")}},
		{
			name: "comments reported",
			in:   ":\n: hb\ndata: a\n:x\n\n",
			opts: &ParseOptions{Comments: true},
			want: []Event{{Comment: true}, {Comment: true, Data: " hb"}, {Comment: true, Data: "x"}, msg("", "a")},
		},
		// Limits.
		{name: "line too long", in: strings.Repeat("x", 100) + "\n", opts: &ParseOptions{MaxLineSize: 64}, lineLimit: true},
		{name: "data too long", in: strings.Repeat("data: 0123456789\n", 10), opts: &ParseOptions{MaxLineSize: 64}, lineLimit: true},
		{name: "small buffer grows", in: "data: " + strings.Repeat("y", 300) + "\n\n", opts: &ParseOptions{BufferSize: 4}, want: []Event{msg("", strings.Repeat("y", 300))}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":   func(s string) io.Reader { return strings.NewReader(s) },
		"onebyte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"dataerr": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"halves":  func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				p := NewParser(mk(tt.in), tt.opts)
				var got []Event
				var err error
				for {
					var ev Event
					ev, err = p.Next()
					if err != nil {
						break
					}
					got = append(got, ev)
				}
				if tt.lineLimit {
					if !errors.Is(err, ErrLineTooLong) {
						t.Fatalf("err = %v, want ErrLineTooLong", err)
					}
					return
				}
				if !errors.Is(err, io.EOF) {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("events\n got %#v\nwant %#v", got, tt.want)
				}
				if p.LastEventID() != tt.lastID {
					t.Errorf("LastEventID = %q, want %q", p.LastEventID(), tt.lastID)
				}
				r, ok := p.Retry()
				if wantOK := tt.retrySet || tt.retry != 0; ok != wantOK || r != tt.retry {
					t.Errorf("Retry = %v,%v, want %v,%v", r, ok, tt.retry, wantOK)
				}
			})
		}
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	frame := []byte("retry: 3000\n\nid: 01J\nevent: task.assigned\ndata: {\"a\":1}\n\n: hb\n\n")
	got, err := ParseBytes(frame, &ParseOptions{Comments: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{ID: "01J", Type: "task.assigned", Data: `{"a":1}`}, {Comment: true, Data: " hb"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	if _, err := ParseBytes(bytes.Repeat([]byte("x"), 100), &ParseOptions{MaxLineSize: 10}); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
}

// An injected CR or LF in a value ends the line: a server that fails to
// reject it produces extra fields. The test documents what a reader sees.
func TestParseInjection(t *testing.T) {
	t.Parallel()
	got, err := ParseBytes([]byte("event: a\rdata: injected\ndata: real\n\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{Type: "a", Data: "injected\nreal"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

func TestParserReset(t *testing.T) {
	t.Parallel()
	p := NewParser(strings.NewReader("retry: 5\nid: 9\ndata: a\n\ndata: partial\n"), nil)
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v", err)
	}
	p.Reset(strings.NewReader("\xEF\xBB\xBFdata: b\n\n"))
	ev, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev != msg("9", "b") {
		t.Fatalf("got %#v: partial data or BOM leaked across Reset", ev)
	}
	if r, ok := p.Retry(); !ok || r != 5*time.Millisecond {
		t.Fatalf("retry lost across Reset: %v %v", r, ok)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestParserNoProgress(t *testing.T) {
	t.Parallel()
	if _, err := NewParser(zeroReader{}, nil).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err = %v", err)
	}
}
