package sse_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"notify/pkg/sse"
	"notify/pkg/sseclient"
)

// The expected transformation, written from the WHATWG event-stream
// processing model rather than from the encoder:
//
//   - id and event: CR, LF and NUL are removed (the encoder drops them so
//     they can neither end the field nor make the parser ignore the id),
//     then invalid UTF-8 is decoded to U+FFFD per byte.
//   - event: an empty result (or no event line) dispatches as "message".
//   - data: split at CRLF, lone CR and lone LF; each line decoded to valid
//     UTF-8; the lines joined with "\n". NUL in data is kept verbatim.
//
// Exactly one event is dispatched, and nothing else: no retry, comment or
// second event can be smuggled in.
func expectEvent(id, event string, data []byte) sseclient.Event {
	typ := utf8Decode(stripCRLFNUL(event))
	if typ == "" {
		typ = sseclient.DefaultEventType
	}
	var lines []string
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		lines = append(lines, utf8Decode(string(data[:i])))
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	lines = append(lines, utf8Decode(string(data)))
	return sseclient.Event{ID: utf8Decode(stripCRLFNUL(id)), Type: typ, Data: strings.Join(lines, "\n")}
}

func stripCRLFNUL(s string) string {
	b := make([]byte, 0, len(s)) // bytewise: invalid UTF-8 must survive
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			b = append(b, c)
		}
	}
	return string(b)
}

// utf8Decode replaces every byte that does not start a valid sequence with
// U+FFFD, as Go's decoder (and so the parser) does.
func utf8Decode(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func FuzzFrame(f *testing.F) {
	f.Add("c1", "task.assigned", []byte(`{"a":1}`))
	f.Add("x\ndata: evil", "t\r\nid: 9", []byte("{}"))
	f.Add("a\x00b", "", []byte(""))
	f.Add("", "\n", []byte("\n"))
	f.Add("\r", "\r\n\r\n", []byte("\r\n\r\n\r\n"))
	f.Add(" lead", " ev", []byte(" data\rdata: two\n\nevent: evil\n\n"))
	f.Add("\xff\xfe", "\xe2\x82", []byte("\xe2\n\x82\xac\x00"))
	f.Add("\xe2\n\x82\xac", "é", []byte("\xef\xbb\xbfbom"))
	f.Add("retry: 1", ": comment", []byte(":\n: c\nretry: 5\n"))
	f.Add(strings.Repeat("i", 70000), strings.Repeat("e\n", 40000), bytes.Repeat([]byte("d\r"), 300000))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		frame := sse.AppendEvent(sse.AppendID(nil, id), event, data)
		// The parser bounds data after decoding, and each invalid UTF-8
		// byte decodes to the 3 bytes of U+FFFD: room for 3× the frame.
		got, err := sseclient.ParseBytes(frame, &sseclient.ParseOptions{MaxLineSize: 3*len(frame) + 64})
		if err != nil {
			t.Fatalf("parse %q: %v", frame, err)
		}
		if len(got) != 1 {
			t.Fatalf("frame %q: %d events, want 1: %+v", frame, len(got), got)
		}
		if want := expectEvent(id, event, data); got[0] != want {
			t.Fatalf("frame %q\n got %+v\nwant %+v", frame, got[0], want)
		}
		// The frame is self-contained: two in a row are two events.
		two, _ := sseclient.ParseBytes(append(frame, frame...), &sseclient.ParseOptions{MaxLineSize: 6*len(frame) + 64})
		if len(two) != 2 || two[1] != got[0] {
			t.Fatalf("frame %q twice: %+v", frame, two)
		}
	})
}

// FuzzComment: a heartbeat comment never turns into a field or an event.
func FuzzComment(f *testing.F) {
	f.Add("")
	f.Add("hi\nevent: x\ndata: y\n")
	f.Add("\r\rdata: z\r\r")
	f.Fuzz(func(t *testing.T, text string) {
		frame := sse.AppendComment(nil, text)
		got, err := sseclient.ParseBytes(frame, &sseclient.ParseOptions{MaxLineSize: 2*len(frame) + 64})
		if err != nil || len(got) != 0 {
			t.Fatalf("comment %q: events %+v err %v", frame, got, err)
		}
		withComments, _ := sseclient.ParseBytes(frame, &sseclient.ParseOptions{Comments: true, MaxLineSize: 2*len(frame) + 64})
		if len(withComments) != 1 || !withComments[0].Comment {
			t.Fatalf("comment %q parsed as %+v", frame, withComments)
		}
	})
}
