package sseclient

import (
	"bytes"
	"errors"
	"io"
	"math"
	"time"
	"unicode/utf8"
)

// ErrLineTooLong is returned when a line, or the data of one event, grows
// beyond ParseOptions.MaxLineSize. The stream cannot be parsed further.
var ErrLineTooLong = errors.New("sseclient: line or event data too long")

const (
	defaultMaxLineSize = 1 << 20
	defaultBufferSize  = 1 << 10
)

var bom = []byte{0xEF, 0xBB, 0xBF}

// ParseOptions configures a Parser. The zero value (or nil) is usable.
type ParseOptions struct {
	// Comments makes Next return comment lines as events with Comment set
	// (tests observe heartbeats this way). Otherwise they are ignored.
	Comments bool
	// MaxLineSize bounds one line and the accumulated data of one event,
	// so a hostile stream cannot grow memory without bound. Default 1 MiB.
	MaxLineSize int
	// BufferSize is the initial read buffer; it grows on demand up to
	// MaxLineSize and is kept across Reset. Default 1 KiB.
	BufferSize int
	// LastEventID seeds the last event ID (a resumed stream's cursor).
	LastEventID string
}

// Parser reads events from a text/event-stream body. It is not safe for
// concurrent use. Strings in returned events never alias its buffers.
type Parser struct {
	r   io.Reader
	err error // sticky read error

	buf        []byte // buffered input is buf[start:end]
	start, end int
	skipLF     bool // previous line ended with CR: a following LF belongs to it
	bomDone    bool

	comments bool
	max      int

	data     []byte // data buffer, each line followed by '\n'
	typ      []byte // event type buffer
	idBuf    string // last event ID buffer
	lastID   string // last event ID string, committed at each blank line
	typStr   string // cache: string of the last dispatched type
	comment  string // cache: text of the last reported comment
	retry    time.Duration
	retrySet bool
}

// NewParser returns a parser reading r.
func NewParser(r io.Reader, opts *ParseOptions) *Parser {
	var o ParseOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxLineSize <= 0 {
		o.MaxLineSize = defaultMaxLineSize
	}
	if o.BufferSize <= 0 {
		o.BufferSize = defaultBufferSize
	}
	o.BufferSize = min(o.BufferSize, o.MaxLineSize)
	return &Parser{
		r:        r,
		buf:      make([]byte, o.BufferSize),
		comments: o.Comments,
		max:      o.MaxLineSize,
		idBuf:    o.LastEventID,
		lastID:   o.LastEventID,
		typStr:   DefaultEventType,
	}
}

// Reset makes p read a new stream from r (a reconnection), keeping its
// buffers, the last event ID and the reconnection time, and dropping any
// partially received event, as an EventSource does.
func (p *Parser) Reset(r io.Reader) {
	p.r, p.err = r, nil
	p.start, p.end = 0, 0
	p.skipLF, p.bomDone = false, false
	p.data, p.typ = p.data[:0], p.typ[:0]
	p.idBuf = p.lastID
}

// LastEventID is the last event ID string: the value an EventSource would
// send as Last-Event-ID on reconnection. It is updated at each blank line
// (also by blocks without data), never by an unterminated block.
func (p *Parser) LastEventID() string { return p.lastID }

// Retry reports the reconnection time from the last valid retry field.
func (p *Parser) Retry() (time.Duration, bool) { return p.retry, p.retrySet }

// Next returns the next dispatched event (or comment, if enabled). At the
// end of the input it returns io.EOF, or the reader's error; a block not
// finished by a blank line is then discarded.
func (p *Parser) Next() (Event, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if !utf8.Valid(line) {
			line = toValidUTF8(line)
		}
		switch {
		case len(line) == 0:
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
		case line[0] == ':':
			if p.comments {
				if c := line[1:]; string(c) != p.comment {
					p.comment = string(c) // heartbeats repeat: reuse the string
				}
				return Event{Data: p.comment, Comment: true}, nil
			}
		default:
			if err := p.field(line); err != nil {
				return Event{}, err
			}
		}
	}
}

func (p *Parser) field(line []byte) error {
	name, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) { // no allocation: the compiler special-cases this
	case "event":
		p.typ = append(p.typ[:0], value...)
	case "data":
		if len(p.data)+len(value)+1 > p.max {
			return ErrLineTooLong
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != p.idBuf {
			p.idBuf = string(value)
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			p.retry, p.retrySet = ms, true
		}
	}
	return nil
}

// dispatch implements the spec's "dispatch the event" on a blank line.
func (p *Parser) dispatch() (Event, bool) {
	p.lastID = p.idBuf
	if len(p.data) == 0 {
		p.typ = p.typ[:0]
		return Event{}, false
	}
	data := p.data[:len(p.data)-1] // drop the final '\n'
	ev := Event{ID: p.lastID, Data: string(data), Type: DefaultEventType}
	if len(p.typ) > 0 {
		if string(p.typ) != p.typStr {
			p.typStr = string(p.typ)
		}
		ev.Type = p.typStr
	}
	p.data, p.typ = p.data[:0], p.typ[:0]
	return ev, true
}

// readLine returns the next line without its terminator. The slice is only
// valid until the next call.
func (p *Parser) readLine() ([]byte, error) {
	for {
		if p.skipLF && p.start < p.end {
			if p.buf[p.start] == '\n' {
				p.start++
			}
			p.skipLF = false
		}
		if !p.bomDone && (p.end-p.start >= len(bom) || p.err != nil ||
			!bytes.HasPrefix(bom, p.buf[p.start:p.end])) {
			if bytes.HasPrefix(p.buf[p.start:p.end], bom) {
				p.start += len(bom)
			}
			p.bomDone = true
		}
		if p.bomDone {
			w := p.buf[p.start:p.end]
			n := bytes.IndexByte(w, '\n')
			lim := w
			if n >= 0 {
				lim = w[:n]
			}
			if c := bytes.IndexByte(lim, '\r'); c >= 0 {
				p.start += c + 1
				p.skipLF = true
				return w[:c], nil
			}
			if n >= 0 {
				p.start += n + 1
				return w[:n], nil
			}
		}
		if p.err != nil {
			return nil, p.err
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more input, compacting or growing the buffer as needed.
func (p *Parser) fill() error {
	if p.start > 0 {
		p.end = copy(p.buf, p.buf[p.start:p.end])
		p.start = 0
	}
	if p.end == len(p.buf) {
		if len(p.buf) >= p.max {
			return ErrLineTooLong
		}
		nb := make([]byte, min(2*len(p.buf), p.max))
		copy(nb, p.buf[:p.end])
		p.buf = nb
	}
	for range 100 { // io.Reader may return 0, nil; do not spin forever
		n, err := p.r.Read(p.buf[p.end:])
		p.end += n
		if err != nil {
			p.err = err
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	p.err = io.ErrNoProgress
	return nil
}

// parseDigits accepts only ASCII digits, as the spec's retry field does,
// saturating instead of overflowing.
func parseDigits(b []byte) (time.Duration, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const maxMS = int64(math.MaxInt64 / int64(time.Millisecond))
	var ms int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxMS {
			ms = ms*10 + int64(c-'0')
		}
	}
	return time.Duration(min(ms, maxMS)) * time.Millisecond, true
}

// toValidUTF8 replaces each invalid byte with U+FFFD, as a UTF-8 decoder
// does (Go's per-byte rule; WHATWG may merge a truncated sequence).
func toValidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
