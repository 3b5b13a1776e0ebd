package notification

import (
	"strconv"
	"time"
)

// Event is one notification on one of its topics, ready to be stored in
// the topic's history and published: what the write side hands its bus.
type Event struct {
	Topic string
	Body  string // EncodeBody(type, envelope)
	Link  uint32 // LinkOf(id)
	// Once, when set, is the notification id of an idempotent publish: the
	// event is stored and published at most once per topic for that id,
	// however many times the publish is attempted.
	Once string
	// Key, when set, makes the event its topic's state for that key, or
	// with Remove (a notification with data null) removes the key.
	Key    string
	Remove bool
}

// Stored is the outcome of publishing one event.
type Stored struct {
	Pos Position
	// Existed: an earlier attempt had already stored the event (same Once
	// id); nothing was published this time.
	Existed bool
}

// IDTime is the time a notification id was made (a UUIDv7's first 48 bits
// are its Unix time in milliseconds); false when id is not one.
func IDTime(id string) (time.Time, bool) {
	if len(id) != 36 || id[8] != '-' || id[14] != '7' {
		return time.Time{}, false
	}
	ms, err := strconv.ParseUint(id[:8]+id[9:13], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}
