package stream

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// Stats counts how a pod's streams resume and what history tells them;
// httpapi exports it. One Stats serves every stream of a pod
// (Limits.Stats); a nil *Stats counts nothing.
type Stats struct {
	resumes [len(ResumeOutcomes)]atomic.Int64
	resets  [len(ResetReasons)]atomic.Int64
}

// ResumeOutcomes label a stream opened with a cursor: every topic resumed
// exactly; at least one got stream.reset; or history could not be read
// yet and the stream catches up once Redis answers.
var ResumeOutcomes = [...]string{"exact", "reset", "deferred"}

// ResetReasons label stream.reset events, in the order of the reasons
// sent with them (replay.go).
var ResetReasons = [...]string{"unreadable_cursor", "history_lost", "history_trimmed", "history_rewound"}

var resetReasonText = [len(ResetReasons)]string{reasonUnreadable, reasonLost, reasonTrimmed, reasonRewound}

// Resumes is how many resumes ended with outcome i (ResumeOutcomes).
func (st *Stats) Resumes(i int) int64 { return st.resumes[i].Load() }

// Resets is how many stream.reset events gave reason i (ResetReasons).
func (st *Stats) Resets(i int) int64 { return st.resets[i].Load() }

func (st *Stats) countReset(reason string) {
	if st == nil {
		return
	}
	for i, r := range resetReasonText {
		if r == reason {
			st.resets[i].Add(1)
		}
	}
}

// countResume classifies a stream's start from a cursor.
func (s *Stream) countResume() {
	st := s.limits.Stats
	if st == nil {
		return
	}
	outcome := 0
	switch {
	case s.resetsSent > 0:
		outcome = 1
	case s.resyncPending():
		outcome = 2
	}
	st.resumes[outcome].Add(1)
}

func (s *Stream) resyncPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.resync {
		if r {
			return true
		}
	}
	return false
}

// EndReasons label why streams end.
var EndReasons = [...]string{"client_gone", "slow", "expired", "max_age", "drain", "error"}

const (
	endClientGone = iota
	endSlow
	endExpired
	endMaxAge
	endDrain
	endError
)

// EndReason is why the stream ended (an index in EndReasons), given what
// serving it returned. Call it once the stream has ended.
func (s *Stream) EndReason(err error) int {
	switch {
	case errors.Is(err, ErrSlow), errors.Is(err, os.ErrDeadlineExceeded):
		return endSlow // backlog limit, or a write the client did not take within WriteTimeout
	case err == nil:
		return s.ended // endClientGone unless a round ended it
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return endClientGone // found gone by a write
	}
	return endError
}
