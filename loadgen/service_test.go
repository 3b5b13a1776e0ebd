package main

import (
	"errors"
	"testing"
)

func eps(ids ...int) []Endpoint {
	var e []Endpoint
	for _, id := range ids {
		e = append(e, Endpoint{ID: id})
	}
	return e
}

// Connects go round robin over the endpoints.
func TestServiceRoundRobin(t *testing.T) {
	t.Parallel()
	s := newService(eps(0, 1, 2), 0)
	for range 9 {
		if _, err := s.connect(func(Endpoint) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if c := s.counts(); c[0] != 3 || c[1] != 3 || c[2] != 3 {
		t.Fatalf("counts %v, want 3 each", c)
	}
}

// A pod that refuses is skipped for the next one, and holds no slot.
func TestServiceSkipsRefusals(t *testing.T) {
	t.Parallel()
	s := newService(eps(0, 1, 2), 0)
	var tried []int
	ep, err := s.connect(func(ep Endpoint) error {
		tried = append(tried, ep.ID)
		if ep.ID != 2 {
			return errors.New("connection refused")
		}
		return nil
	})
	if err != nil || ep.ID != 2 || len(tried) != 3 {
		t.Fatalf("got %v %v after %v", ep, err, tried)
	}
	if c := s.counts(); len(c) != 1 || c[2] != 1 {
		t.Fatalf("counts %v: refusals must not hold slots", c)
	}
	if _, err := s.connect(func(Endpoint) error { return errors.New("refused") }); err == nil {
		t.Fatal("every pod refused: want an error")
	}
	// A pod's HTTP answer ends the attempt: the client backs off.
	tried = tried[:0]
	_, err = s.connect(func(ep Endpoint) error {
		tried = append(tried, ep.ID)
		return &statusError{code: 503}
	})
	if _, ok := errors.AsType[*statusError](err); !ok || len(tried) != 1 {
		t.Fatalf("got %v after trying %v; want the 503 after one pod", err, tried)
	}
}

// A full pod is skipped without a try; released slots are reused; new
// endpoints take new streams while old ones keep theirs.
func TestServiceQuotaAndEndpoints(t *testing.T) {
	t.Parallel()
	s := newService(eps(0, 1), 2)
	ok := func(Endpoint) error { return nil }
	for range 4 {
		if _, err := s.connect(ok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.connect(func(ep Endpoint) error {
		t.Errorf("tried full pod %d", ep.ID)
		return nil
	}); !errors.Is(err, errNoPod) {
		t.Fatalf("both pods full: got %v, want errNoPod", err)
	}
	s.release(1)
	if ep, err := s.connect(ok); err != nil || ep.ID != 1 {
		t.Fatalf("got %v %v, want pod 1's freed slot", ep, err)
	}
	s.setEndpoints(eps(1, 2))
	if s.has(0) || !s.has(2) {
		t.Fatal("has: endpoints not replaced")
	}
	if ep, err := s.connect(ok); err != nil || ep.ID != 2 {
		t.Fatalf("got %v %v, want the new pod 2", ep, err)
	}
	if c := s.counts(); c[0] != 2 || c[1] != 2 || c[2] != 1 {
		t.Fatalf("counts %v", c)
	}
}
