package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// do runs attempt until it succeeds, fails for good, runs out of attempts
// or time, or ctx ends. Waits grow exponentially with ±50% jitter; a
// Retry-After from the server replaces the computed wait (capped at Max).
// A 409 (an earlier attempt's outcome is still being settled) uses up
// time but not attempts: giving up then would leave the outcome unknown.
func (r Retry) do(ctx context.Context, attempt func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = r.Initial, r.Max
	start := time.Now()
	for n := 0; ; {
		err := attempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(context.Cause(ctx), err)
		}
		again, after := retryable(err)
		if !again {
			return err
		}
		if !settling(err) {
			n++
		}
		if n >= r.MaxAttempts {
			return fmt.Errorf("publisher: gave up after %d attempts: %w", n, err)
		}
		wait := b.NextBackOff()
		if after > 0 {
			wait = min(after, r.Max)
		}
		if time.Since(start)+wait > r.MaxElapsed {
			return fmt.Errorf("publisher: gave up after %d attempts in %s: %w", n, time.Since(start).Round(time.Millisecond), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(context.Cause(ctx), err)
		}
	}
}
