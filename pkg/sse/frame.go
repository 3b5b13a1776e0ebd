// Package sse encodes Server-Sent Events frames. Callers build the shared
// part of a frame (event and data) once per message and add the per-stream
// id in front, so fan-out to many streams encodes nothing twice.
package sse

import (
	"bytes"
	"strconv"
	"strings"
)

// AppendID appends an "id:" line. CR, LF and NUL are dropped: they would
// end the field early (injection) or make the browser ignore the id.
func AppendID(dst []byte, id string) []byte {
	dst = append(dst, "id: "...)
	dst = appendClean(dst, id)
	return append(dst, '\n')
}

// AppendEvent appends "event:" and "data:" lines and the blank line that
// dispatches the event. Newlines in data become extra data lines, which a
// spec parser joins back with "\n"; a lone CR counts as a line end too.
func AppendEvent(dst []byte, event string, data []byte) []byte {
	if event != "" {
		dst = append(dst, "event: "...)
		dst = appendClean(dst, event)
		dst = append(dst, '\n')
	}
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		dst = appendData(dst, data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

// AppendComment appends a comment line, used as a heartbeat.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	if text != "" {
		dst = append(dst, ' ')
		dst = appendClean(dst, text)
	}
	return append(dst, '\n', '\n')
}

// AppendRetry appends a "retry:" field: the client's reconnection delay.
func AppendRetry(dst []byte, millis int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, millis, 10)
	return append(dst, '\n', '\n')
}

func appendData(dst, line []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}

func appendClean(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			dst = append(dst, c)
		}
	}
	return dst
}
