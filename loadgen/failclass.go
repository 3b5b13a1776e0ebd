package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http/httputil"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// A fleet stream's failed connect attempts, by why they failed: the pods'
// answers (503 while draining, 503 for another reason, 429, another
// status) apart from what the network did (refused, timed out, reset
// before the response's head), so a count of failures says which side
// failed.
const (
	failRefused = "refused"
	failDrain   = "503 draining"
	fail429     = "429"
	failTimeout = "timeout"
	failReset   = "reset/EOF before headers"
	failOther   = "other"
	failNoPod   = "no pod with room (the Service's per-pod cap)"
)

// maxFailClasses bounds the classes kept: 503 details beyond it count as
// "503 other".
const maxFailClasses = 24

// failureClass names why a connect attempt failed.
func failureClass(err error) string {
	if se, ok := errors.AsType[*statusError](err); ok {
		switch {
		case se.code == 503 && strings.Contains(se.detail, "drain"):
			return failDrain
		case se.code == 503:
			if w := firstWords(se.detail, 4); w != "" {
				return "503 " + w
			}
			return "503"
		case se.code == 429:
			return fail429
		default:
			return "http " + strconv.Itoa(se.code)
		}
	}
	var ne net.Error
	switch {
	case errors.Is(err, errNoPod):
		return failNoPod
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return failReset
	}
	// Anything else the system refused is named by its operation and
	// errno (a dial's "bind: address already in use"), so no failure
	// hides in "other".
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if op, ok := errors.AsType[*net.OpError](err); ok {
			return op.Op + ": " + errno.Error()
		}
		return errno.Error()
	}
	return failOther
}

// firstWords is the first n words of a problem's detail, up to its first
// punctuation: "Redis is unavailable; retry later" → "Redis is unavailable".
func firstWords(detail string, n int) string {
	if i := strings.IndexAny(detail, ";:,.("); i >= 0 {
		detail = detail[:i]
	}
	words := strings.Fields(detail)
	return strings.Join(words[:min(n, len(words))], " ")
}

// failures counts failed connect attempts by class.
type failures struct {
	mu sync.Mutex
	n  map[string]int64
}

func (f *failures) add(err error) {
	c := failureClass(err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int64{}
	}
	if _, ok := f.n[c]; !ok && len(f.n) >= maxFailClasses && strings.HasPrefix(c, "503 ") {
		c = "503 other"
	}
	f.n[c]++
}

func (f *failures) snapshot() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.n)
}

// failedAttempts is n for the results file: {} rather than null when no
// attempt failed.
func failedAttempts(n map[string]int64) map[string]int64 {
	if n == nil {
		return map[string]int64{}
	}
	return n
}

// failureNote lists the classes, most frequent first, and their total.
func failureNote(n map[string]int64) (int64, string) {
	classes := slices.Collect(maps.Keys(n))
	slices.SortFunc(classes, func(a, b string) int {
		return cmp.Or(cmp.Compare(n[b], n[a]), strings.Compare(a, b))
	})
	var total int64
	parts := make([]string, len(classes))
	for i, c := range classes {
		total += n[c]
		parts[i] = fmt.Sprintf("%s %d", c, n[c])
	}
	if len(parts) == 0 {
		return 0, "none"
	}
	return total, strings.Join(parts, ", ")
}

// problemDetail reads a refusal's body (a problem+json document, a few
// hundred bytes) and returns its detail, or "" if it has none.
func problemDetail(br *bufio.Reader, length int) string {
	const most = 4096
	var body []byte
	switch {
	case length > 0:
		body = make([]byte, min(length, most))
		n, _ := io.ReadFull(br, body)
		body = body[:n]
	case length == chunked:
		body, _ = io.ReadAll(io.LimitReader(httputil.NewChunkedReader(br), most))
	case length == untilClose:
		body, _ = io.ReadAll(io.LimitReader(br, most))
	}
	return fieldString(string(body), `"detail":"`)
}
