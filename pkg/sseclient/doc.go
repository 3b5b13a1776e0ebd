// Package sseclient is a Server-Sent Events client that follows the WHATWG
// HTML "server-sent events" processing model.
//
// It has two layers:
//
//   - [Parser] turns an io.Reader carrying text/event-stream into [Event]s
//     (LF, CR and CRLF line endings, leading BOM, data joining, the
//     persistent last event ID, retry, optional comment reporting).
//     [ParseBytes] parses a whole frame for tests.
//   - [Stream] connects with a caller-supplied *http.Client, reconnects on
//     network errors and end of stream with Last-Event-ID, honours the
//     server's retry field (capped, with optional jitter), and fails the
//     connection on anything that is not 200 text/event-stream unless the
//     caller asked to retry that status (429/503 with Retry-After).
//
// It is written for tests and for a load generator holding many thousands
// of streams per process: per-stream state is one small growable buffer,
// events are delivered synchronously to a callback, and parsing allocates
// only the strings it hands out.
package sseclient
