package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults used for zero-valued fields of Backoff.
const (
	DefaultInitial    = 100 * time.Millisecond
	DefaultMax        = 12800 * time.Millisecond // DefaultInitial doubled 7 times
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.2
)

// Backoff produces a sequence of delays: Initial, Initial*Multiplier,
// Initial*Multiplier², ... capped at Max, each reduced by a random jitter.
//
// The zero value is ready to use with the defaults above. Fields may be
// set before first use; changing them later takes effect from the next
// delay. A Backoff is not safe for concurrent use.
type Backoff struct {
	// Initial is the first delay. Zero or negative means DefaultInitial
	// (100ms).
	Initial time.Duration

	// Max caps the delay. No delay returned by Next ever exceeds it.
	// Zero or negative means DefaultMax (12.8s).
	Max time.Duration

	// Multiplier is the factor between consecutive delays. Zero means
	// DefaultMultiplier (2); other values below 1 (including NaN) mean 1,
	// a constant delay.
	Multiplier float64

	// Jitter is the fraction by which a delay may be randomly shortened:
	// each delay is drawn uniformly from [(1-Jitter)·d, d], where d is the
	// capped exponential delay. Jitter only ever shortens, so Max stays a
	// hard cap; 0.5 is what is known as "equal jitter" and 1 as "full
	// jitter". Zero means DefaultJitter (0.2); negative disables jitter;
	// values above 1 mean 1.
	Jitter float64

	// Rand returns a number in [0, 1) and is the source of jitter; out of
	// range values are clamped. It exists so that tests can be
	// deterministic. Nil means math/rand/v2.Float64.
	Rand func() float64

	// cur is the un-jittered delay last returned; zero before the first
	// call to Next and after Reset.
	cur time.Duration
}

// Exponential returns a Backoff that starts at initial, doubles up to
// maxDelay, and shortens each delay by up to the fraction jitter (see
// Backoff.Jitter): every delay lies in [(1-jitter)·d, d] with d ≤ maxDelay.
func Exponential(initial, maxDelay time.Duration, jitter float64) *Backoff {
	return &Backoff{Initial: initial, Max: maxDelay, Multiplier: DefaultMultiplier, Jitter: jitter}
}

// Reconnect returns the policy of tunnel-host and tunnel-client connect
// when they lose the relay: 100ms doubling to 12.8s, each delay drawn
// from [d/2, d] ("equal jitter").
func Reconnect() *Backoff {
	return Exponential(DefaultInitial, DefaultMax, 0.5)
}

// Next returns the next delay and advances the sequence.
func (b *Backoff) Next() time.Duration {
	maxD := b.Max
	if maxD <= 0 {
		maxD = DefaultMax
	}

	if b.cur == 0 {
		b.cur = b.Initial
		if b.cur <= 0 {
			b.cur = DefaultInitial
		}
	} else {
		// Float arithmetic, compared before converting back, so that a
		// long run of retries cannot overflow time.Duration.
		next := float64(b.cur) * b.multiplier()
		if next < float64(maxD) {
			b.cur = time.Duration(next)
		} else {
			b.cur = maxD
		}
	}
	b.cur = min(b.cur, maxD)

	d := b.cur
	if j := b.jitter(); j > 0 {
		d -= time.Duration(j * b.rand() * float64(d))
	}
	return d
}

// Reset restarts the sequence, so that the next delay is Initial again.
// Call it after a success.
func (b *Backoff) Reset() {
	b.cur = 0
}

// Wait sleeps for the next delay (as returned by Next) or until ctx is
// done, whichever comes first. It returns nil after a full sleep and
// ctx.Err() otherwise. If ctx is already done, Wait returns at once
// without advancing the sequence.
func (b *Backoff) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *Backoff) multiplier() float64 {
	m := b.Multiplier
	switch {
	case m == 0:
		return DefaultMultiplier
	case m >= 1:
		return m
	default: // below 1, or NaN
		return 1
	}
}

func (b *Backoff) jitter() float64 {
	j := b.Jitter
	switch {
	case j == 0:
		return DefaultJitter
	case j > 1:
		return 1
	case j > 0:
		return j
	default: // negative or NaN: disabled
		return 0
	}
}

func (b *Backoff) rand() float64 {
	var r float64
	if b.Rand != nil {
		r = b.Rand()
	} else {
		r = rand.Float64()
	}
	switch {
	case r > 1:
		return 1
	case r >= 0:
		return r
	default: // negative or NaN
		return 0
	}
}
