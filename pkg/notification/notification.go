package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ReservedTypePrefix marks event types only the server may send.
const ReservedTypePrefix = "stream."

// ErrInvalidType is wrapped by every type validation failure.
var ErrInvalidType = errors.New("invalid type")

// ValidateType reports whether s matches [A-Za-z0-9][A-Za-z0-9._:-]{0,127}
// and is not reserved. The charset excludes CR, LF, NUL and space, which
// is what keeps a type from injecting SSE fields.
func ValidateType(s string) error {
	if len(s) < 1 || len(s) > 128 {
		return fmt.Errorf("%w %q: must be 1 to 128 characters", ErrInvalidType, clip(s))
	}
	if c := s[0]; !(isLower(c) || isUpper(c) || isDigit(c)) {
		return fmt.Errorf("%w %q: must start with a letter or digit", ErrInvalidType, clip(s))
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("%w %q: must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}", ErrInvalidType, clip(s))
		}
	}
	if strings.HasPrefix(s, ReservedTypePrefix) {
		return fmt.Errorf("%w %q: the prefix %q is reserved for the server", ErrInvalidType, clip(s), ReservedTypePrefix)
	}
	return nil
}

// NewID returns a unique, time-sortable notification id (UUIDv7).
func NewID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("notification: new id: %w", err)
	}
	return id.String(), nil
}

// Envelope is the JSON object a subscriber receives as an event's data.
type Envelope struct {
	ID    string    `json:"id"`
	Topic string    `json:"topic"`
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	// Key, when set, makes the notification its topic's current state for
	// that key; absent from the JSON when empty.
	Key  string          `json:"key,omitempty"`
	Data json.RawMessage `json:"data"`
}

// Marshal encodes the envelope on one line. Data must already be compact
// JSON (see CompactData): an SSE data line cannot hold a newline.
func (e *Envelope) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("notification: marshal envelope: %w", err)
	}
	return b, nil
}

// CompactData returns data as compact JSON, or an error if it is not JSON.
func CompactData(data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, fmt.Errorf("notification: data is not valid JSON: %w", err)
	}
	return buf.Bytes(), nil
}

// timeField precedes the time in an envelope as Marshal writes it. The
// fields before it cannot hold it unescaped: a quote inside a JSON string
// is always preceded by a backslash.
var timeField = []byte(`,"time":"`)

// EnvelopeTime reads the time field of an envelope written by Marshal
// without decoding the rest of it.
func EnvelopeTime(env []byte) (time.Time, bool) {
	i := bytes.Index(env, timeField)
	if i < 0 {
		return time.Time{}, false
	}
	rest := env[i+len(timeField):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}
