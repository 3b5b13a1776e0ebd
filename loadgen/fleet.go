package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// perWorker streams per worker process: well under the 20,000 open files
// a process may hold.
const perWorker = 5000

// Fleet is the set of worker processes holding a scenario's streams.
type Fleet struct {
	mu sync.Mutex // one command at a time
	ws []*workerProc
}

type workerProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	first int
	n     int
}

// StartFleet starts enough workers for n streams.
func StartFleet(n int) (*Fleet, error) { return startWorkers(n, perWorker) }

// startWorkers starts enough workers for n streams, per in each.
func startWorkers(n, per int) (*Fleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &Fleet{}
	for first := 0; first < n; first += per {
		cmd := exec.Command(self, "worker")
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = childAttr()
		in, err := cmd.StdinPipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			f.Close()
			return nil, err
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		f.ws = append(f.ws, &workerProc{cmd: cmd, in: in, out: sc, first: first, n: min(per, n-first)})
	}
	return f, nil
}

// all sends mk(worker) to every worker at once and merges the replies.
func (f *Fleet) all(mk func(*workerProc) Cmd) (Reply, []Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	replies := make([]Reply, len(f.ws))
	errs := make([]error, len(f.ws))
	var wg sync.WaitGroup
	for i, w := range f.ws {
		wg.Go(func() {
			b, _ := json.Marshal(mk(w))
			if _, err := w.in.Write(append(b, '\n')); err != nil {
				errs[i] = err
				return
			}
			if !w.out.Scan() {
				errs[i] = fmt.Errorf("worker %d exited: %v", i, w.out.Err())
				return
			}
			if err := json.Unmarshal(w.out.Bytes(), &replies[i]); err != nil {
				errs[i] = err
			} else if replies[i].Err != "" {
				errs[i] = fmt.Errorf("worker %d: %s", i, replies[i].Err)
			}
		})
	}
	wg.Wait()
	sum := Reply{Lat: HistSnap{}, Connect: HistSnap{}}
	for i, r := range replies {
		if errs[i] != nil {
			return sum, replies, errs[i]
		}
		sum.Open += r.Open
		sum.Failed += r.Failed
		sum.Received += r.Received
		sum.Gaps += r.Gaps
		sum.Dups += r.Dups
		sum.Resets += r.Resets
		sum.Ended += r.Ended
		sum.NotCaught += r.NotCaught
		sum.Lat.Merge(r.Lat)
		sum.Connect.Merge(r.Connect)
		sum.EstablishUS = max(sum.EstablishUS, r.EstablishUS)
		sum.CaughtUpUS = max(sum.CaughtUpUS, r.CaughtUpUS)
		sum.FleetReply.merge(r.FleetReply)
	}
	return sum, replies, nil
}

// Open connects the streams: topics[i] is stream i's topic.
func (f *Fleet) Open(bases []string, baseline bool, secret string, topics []string, conc int) (Reply, error) {
	r, _, err := f.all(func(w *workerProc) Cmd {
		return Cmd{Op: "open", Bases: bases, Baseline: baseline, Secret: secret, First: w.first,
			Topics: topics[w.first : w.first+w.n], Concurrency: conc}
	})
	return r, err
}

// Op runs a simple command (stats, reset, drop) on every worker.
func (f *Fleet) Op(op string) (Reply, error) {
	r, _, err := f.all(func(*workerProc) Cmd { return Cmd{Op: op} })
	return r, err
}

// Resume reconnects every stream with its cursor and waits until each has
// seen targets[topic].
func (f *Fleet) Resume(targets map[string]int64, conc, gen int) (Reply, error) {
	r, _, err := f.all(func(*workerProc) Cmd { return Cmd{Op: "resume", Targets: targets, Concurrency: conc, Gen: gen} })
	return r, err
}

// OpenFleet connects fleet streams (fleetstream.go): topics[i] is stream
// i's own topic, extra[i] its second topic or "".
func (f *Fleet) OpenFleet(o FleetOpen, secret string, topics, extra []string, conc int) (Reply, error) {
	r, _, err := f.all(func(w *workerProc) Cmd {
		wo := o
		if extra != nil {
			wo.Extra = extra[w.first : w.first+w.n]
		}
		return Cmd{Op: "open", Fleet: &wo, Secret: secret, First: w.first, Topics: topics[w.first : w.first+w.n], Concurrency: conc}
	})
	return r, err
}

// SetPods gives every worker's Service its endpoints from now on.
func (f *Fleet) SetPods(eps []Endpoint) (Reply, error) {
	r, _, err := f.all(func(*workerProc) Cmd { return Cmd{Op: "pods", Pods: eps} })
	return r, err
}

// Verify counts what each fleet stream missed of targets (topic → last n
// accepted).
func (f *Fleet) Verify(targets map[string]int64) (Reply, error) {
	r, _, err := f.all(func(*workerProc) Cmd { return Cmd{Op: "verify", Targets: targets} })
	return r, err
}

// Workers is the number of worker processes.
func (f *Fleet) Workers() int { return len(f.ws) }

// Close stops every worker.
func (f *Fleet) Close() {
	_, _, _ = f.all(func(*workerProc) Cmd { return Cmd{Op: "close"} })
	for _, w := range f.ws {
		_ = w.in.Close()
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = w.cmd.Process.Kill()
			<-done
		}
	}
}
