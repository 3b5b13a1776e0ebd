package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"notify/pkg/notification"
)

func TestStatsCountResumesAndResets(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, m mode) {
		topics := []string{"a:1", "b:2"}
		st := &Stats{}
		l := podLimits(t)
		l.Stats = st
		h := newHistory()
		for seq := uint64(1); seq <= 6; seq++ {
			h.add("a:1", 7, seq)
		}
		at := func(seq uint64) string {
			return cursorAt(topics, notification.Position{Epoch: 7, Seq: seq}, notification.Position{})
		}
		for _, cursor := range []string{"", at(4), at(6)} {
			if _, err := serve(t, m, h, topics, cursor, l, func(*Stream) {}); err != nil {
				t.Fatal(err)
			}
		}
		h.trim("a:1", 5)
		for _, cursor := range []string{at(2), "garbage!"} {
			if _, err := serve(t, m, h, topics, cursor, l, func(*Stream) {}); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]int64{"exact": 2, "reset": 2, "deferred": 0}
		for i, o := range ResumeOutcomes {
			if got := st.Resumes(i); got != want[o] {
				t.Errorf("resumes %s = %d, want %d", o, got, want[o])
			}
		}
		wantResets := map[string]int64{"history_trimmed": 1, "unreadable_cursor": 1}
		for i, r := range ResetReasons {
			if got := st.Resets(i); got != wantResets[r] {
				t.Errorf("resets %s = %d, want %d", r, got, wantResets[r])
			}
		}
	})
}

func TestEndReason(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	close(closed)
	future := time.Now().Add(time.Hour)
	tests := []struct {
		want string
		gone bool // the client hung up before the stream started
		opts Options
	}{
		{"expired", false, Options{Expiry: time.Now(), MaxAge: time.Hour}},
		{"max_age", false, Options{Expiry: future, MaxAge: time.Millisecond}},
		{"drain", false, Options{Expiry: future, MaxAge: time.Hour, Drain: closed}},
		{"client_gone", true, Options{Expiry: future, MaxAge: time.Hour}},
	}
	eachMode(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			ctx, cancel := context.WithCancel(t.Context())
			if tc.gone {
				cancel()
			}
			s := New([]string{"a:1"}, newHistory(), podLimits(t), zap.NewNop())
			w, _ := m.client()
			_, ended := start(t, ctx, s, w, tc.opts)
			err := endsWith(t, ended, tc.want)
			if got := EndReasons[s.EndReason(err)]; got != tc.want {
				t.Errorf("%s: EndReason(%v) = %s", tc.want, err, got)
			}
			cancel()
		}
	})
	s := New([]string{"a:1"}, newHistory(), limits(), zap.NewNop())
	for err, want := range map[error]string{
		ErrSlow: "slow",
		fmt.Errorf("stream: write: %w", os.ErrDeadlineExceeded): "slow",
		fmt.Errorf("stream: write: %w", syscall.EPIPE):          "client_gone",
		errors.New("stream: set write deadline: boom"):          "error",
	} {
		if got := EndReasons[s.EndReason(err)]; got != want {
			t.Errorf("EndReason(%v) = %s, want %s", err, got, want)
		}
	}
}
