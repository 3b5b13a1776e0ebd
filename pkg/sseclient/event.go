package sseclient

import (
	"bytes"
	"errors"
	"io"
)

// DefaultEventType is the type of an event whose block had no event field.
const DefaultEventType = "message"

// Event is one dispatched server-sent event, or a comment line when the
// parser was asked to report comments.
type Event struct {
	// ID is the stream's last event ID when the event was dispatched, as
	// the spec's MessageEvent.lastEventId: it persists from earlier events
	// when this block had no id field.
	ID string
	// Type is the event field, or DefaultEventType when there was none.
	// Empty for comments.
	Type string
	// Data is the data lines joined with "\n" (no trailing newline). For a
	// comment, it is the text after the ':' verbatim.
	Data string
	// Comment marks a comment line (a line starting with ':'), reported
	// only when ParseOptions.Comments is set.
	Comment bool
}

// ParseBytes parses a complete stream held in b and returns every event it
// dispatches, in order, and the options' comments if asked for. As the spec
// requires, a trailing block not ended by a blank line is discarded. The
// only error is ErrLineTooLong.
func ParseBytes(b []byte, opts *ParseOptions) ([]Event, error) {
	p := NewParser(bytes.NewReader(b), opts)
	var out []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}
