package main

import (
	"errors"
	"strconv"
	"sync"
)

// Endpoint is one read-api pod behind the emulated Service. IDs are never
// reused: a pod's replacement gets a new one.
type Endpoint struct {
	ID  int    `json:"id"`
	URL string `json:"url"`
}

// errNoPod means every endpoint was full or refused the connection.
var errNoPod = errors.New("loadgen: no pod took the stream")

// service stands in for a Kubernetes Service in front of the read-api
// pods, as one worker process sees it: each connect attempt goes to the
// next endpoint round robin, and one that refuses (503 while draining,
// connection refused) is skipped for the next. quota caps the streams
// this worker holds on one pod, so that with the other workers' shares a
// pod stays under the machine's 20,000 open files per process (the
// connection limit a load balancer would hold per backend).
type service struct {
	mu    sync.Mutex
	eps   []Endpoint
	open  map[int]int // endpoint ID → streams this worker holds there
	quota int         // 0: no cap
	next  int
}

func newService(eps []Endpoint, quota int) *service {
	return &service{eps: eps, open: map[int]int{}, quota: quota}
}

// setEndpoints replaces the endpoints (a pod added, or removed when it
// starts terminating); streams already open stay where they are.
func (s *service) setEndpoints(eps []Endpoint) {
	s.mu.Lock()
	s.eps = eps
	s.mu.Unlock()
}

// connect offers the stream to each endpoint once, round robin from the
// one after the last used, until try accepts one; full endpoints are
// skipped without a try. An endpoint that answers (an HTTP status other
// than 200: a *statusError) ends the attempt, as a Service does not retry
// requests: the client backs off. It returns the endpoint holding the
// stream.
func (s *service) connect(try func(Endpoint) error) (Endpoint, error) {
	s.mu.Lock()
	eps := s.eps
	s.mu.Unlock()
	var last error = errNoPod
	for range eps {
		ep, ok := s.reserve(eps)
		if !ok {
			continue
		}
		if err := try(ep); err != nil {
			s.release(ep.ID)
			if _, answered := errors.AsType[*statusError](err); answered {
				return Endpoint{}, err
			}
			last = err
			continue
		}
		return ep, nil
	}
	return Endpoint{}, last
}

// reserve takes a slot on the next endpoint of eps if it has room.
func (s *service) reserve(eps []Endpoint) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep := eps[s.next%len(eps)]
	s.next++
	if s.quota > 0 && s.open[ep.ID] >= s.quota {
		return ep, false
	}
	s.open[ep.ID]++
	return ep, true
}

// release gives back a slot: the stream on that endpoint ended.
func (s *service) release(id int) {
	s.mu.Lock()
	if s.open[id]--; s.open[id] <= 0 {
		delete(s.open, id)
	}
	s.mu.Unlock()
}

// counts is a copy of the open streams per endpoint ID.
func (s *service) counts() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[int]int, len(s.open))
	for k, v := range s.open {
		c[k] = v
	}
	return c
}

// has reports whether id is one of the endpoints.
func (s *service) has(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ep := range s.eps {
		if ep.ID == id {
			return true
		}
	}
	return false
}

// statusError is a pod's answer other than 200 to a stream request, with
// its problem's detail.
type statusError struct {
	code   int
	detail string
}

func (e *statusError) Error() string {
	if e.detail == "" {
		return "status " + strconv.Itoa(e.code)
	}
	return "status " + strconv.Itoa(e.code) + ": " + e.detail
}
