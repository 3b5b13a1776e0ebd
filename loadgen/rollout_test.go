package main

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// fakeFleet records a rollout's steps and checks, at each SIGTERM, how
// many pods the Service still has.
type fakeFleet struct {
	t        *testing.T
	slots    []int
	next     int
	serving  []int // the Service's endpoints
	addrs    map[int]string
	log      []string
	atTerm   []int // endpoints serving when each pod got SIGTERM
	failTerm int   // this pod exits badly
}

func newFakeFleet(t *testing.T, n int) *fakeFleet {
	f := &fakeFleet{t: t, addrs: map[int]string{}, failTerm: -1}
	for i := range n {
		f.slots = append(f.slots, i)
		f.addrs[i] = fmt.Sprintf("addr%d", i)
	}
	f.next = n
	f.serving = slices.Clone(f.slots)
	return f
}

func (f *fakeFleet) pod(slot int) int { return f.slots[slot] }

func (f *fakeFleet) start(slot int, reuse bool) (int, error) {
	id := f.next
	f.next++
	if reuse {
		f.addrs[id] = f.addrs[f.slots[slot]]
	} else {
		f.addrs[id] = fmt.Sprintf("addr%d", id)
	}
	f.slots[slot] = id
	f.log = append(f.log, fmt.Sprintf("start %d", id))
	return id, nil
}

func (f *fakeFleet) route(out int) error {
	f.serving = f.serving[:0]
	for _, id := range f.slots {
		if id != out {
			f.serving = append(f.serving, id)
		}
	}
	f.log = append(f.log, fmt.Sprintf("route %v", f.serving))
	return nil
}

func (f *fakeFleet) terminate(id int) error {
	if slices.Contains(f.serving, id) {
		f.t.Errorf("pod %d got SIGTERM while still in the Service %v", id, f.serving)
	}
	f.atTerm = append(f.atTerm, len(f.serving))
	f.log = append(f.log, fmt.Sprintf("term %d", id))
	if id == f.failTerm {
		return errors.New("killed")
	}
	return nil
}

func (f *fakeFleet) waitBack(old, repl int) PodBack {
	f.log = append(f.log, fmt.Sprintf("back %d→%d", old, repl))
	return PodBack{Pod: old, Replacement: repl}
}

// With surge the replacement is ready and in the Service before the old
// pod gets SIGTERM: the Service never has fewer pods than slots.
func TestRolloutSurge(t *testing.T) {
	t.Parallel()
	f := newFakeFleet(t, 3)
	backs, err := rollout(true, 3, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"start 3", "route [3 1 2]", "term 0", "back 0→3",
		"start 4", "route [3 4 2]", "term 1", "back 1→4",
		"start 5", "route [3 4 5]", "term 2", "back 2→5",
	}
	if !reflect.DeepEqual(f.log, want) {
		t.Fatalf("steps:\n%q\nwant\n%q", f.log, want)
	}
	if !reflect.DeepEqual(f.atTerm, []int{3, 3, 3}) {
		t.Fatalf("pods serving at each SIGTERM: %v, want 3 each", f.atTerm)
	}
	if len(backs) != 3 || backs[2].Pod != 2 || backs[2].Replacement != 5 {
		t.Fatalf("backs: %+v", backs)
	}
	if f.addrs[3] == f.addrs[0] {
		t.Fatal("a surge replacement is a new pod with its own address")
	}
}

// In place, a pod leaves the Service, exits, and comes back on its own
// address before the next one goes.
func TestRolloutInPlace(t *testing.T) {
	t.Parallel()
	f := newFakeFleet(t, 2)
	if _, err := rollout(false, 2, f); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"route [1]", "term 0", "start 2", "route [2 1]", "back 0→2",
		"route [2]", "term 1", "start 3", "route [2 3]", "back 1→3",
	}
	if !reflect.DeepEqual(f.log, want) {
		t.Fatalf("steps:\n%q\nwant\n%q", f.log, want)
	}
	if f.addrs[2] != f.addrs[0] || f.addrs[3] != f.addrs[1] {
		t.Fatalf("restarted pods must reuse their addresses: %v", f.addrs)
	}
}

// A pod that had to be killed is reported, and the rollout goes on.
func TestRolloutReportsBadExit(t *testing.T) {
	t.Parallel()
	f := newFakeFleet(t, 3)
	f.failTerm = 1
	backs, err := rollout(true, 3, f)
	if err == nil || len(backs) != 3 {
		t.Fatalf("err %v, %d pods replaced; want the error and all 3", err, len(backs))
	}
}
