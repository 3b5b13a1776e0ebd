package main

import (
	"errors"
	"fmt"
)

// rolloutOps are the steps of a rolling restart on some set of pods.
// A slot is a replica of the Deployment; each pod has its own ID.
type rolloutOps interface {
	pod(slot int) int // the pod serving slot now
	// start runs a new pod for slot (on the old pod's address if reuse)
	// and returns once it is ready; it serves slot from then on.
	start(slot int, reuse bool) (int, error)
	// route sets the Service's endpoints: every slot's pod but out (-1: all).
	route(out int) error
	// terminate sends SIGTERM to a pod and waits for it to exit.
	terminate(id int) error
	// waitBack waits until every stream the old pod ended is back.
	waitBack(old, replacement int) PodBack
}

// rollout replaces every slot's pod, one after another. With surge (what
// a Deployment with maxSurge 1 and maxUnavailable 0 does, as k8s/base
// configures read-api) the replacement is ready before the old pod gets
// SIGTERM, so capacity never drops; without, the old pod leaves the
// Service, drains and exits, and its replacement starts on its address.
// Either way the next slot waits until the streams the old pod ended are
// all back somewhere.
func rollout(surge bool, slots int, ops rolloutOps) ([]PodBack, error) {
	var backs []PodBack
	var errs []error
	for slot := range slots {
		old := ops.pod(slot)
		var repl int
		var err error
		if surge {
			if repl, err = ops.start(slot, false); err != nil {
				return backs, errors.Join(append(errs, fmt.Errorf("start the replacement of pod %d: %w", old, err))...)
			}
			if err = ops.route(-1); err != nil {
				return backs, errors.Join(append(errs, err)...)
			}
			if err = ops.terminate(old); err != nil {
				errs = append(errs, err)
			}
		} else {
			if err = ops.route(old); err != nil {
				return backs, errors.Join(append(errs, err)...)
			}
			if err = ops.terminate(old); err != nil {
				errs = append(errs, err)
			}
			if repl, err = ops.start(slot, true); err != nil {
				return backs, errors.Join(append(errs, fmt.Errorf("restart pod %d: %w", old, err))...)
			}
			if err = ops.route(-1); err != nil {
				return backs, errors.Join(append(errs, err)...)
			}
		}
		backs = append(backs, ops.waitBack(old, repl))
	}
	return backs, errors.Join(errs...)
}
