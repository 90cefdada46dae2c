package backoff_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/transport/backoff"
)

const ms = time.Millisecond

func constRand(r float64) func() float64 { return func() float64 { return r } }

func TestNextSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    backoff.Backoff
		want []time.Duration
	}{
		{
			name: "defaults without jitter double and cap",
			b:    backoff.Backoff{Jitter: -1},
			want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 12800 * ms, 12800 * ms},
		},
		{
			name: "custom multiplier caps at a max that is not a power",
			b:    backoff.Backoff{Initial: 10 * ms, Max: time.Second, Multiplier: 3, Jitter: -1},
			want: []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second, time.Second},
		},
		{
			name: "initial above max is capped",
			b:    backoff.Backoff{Initial: time.Minute, Max: time.Second, Jitter: -1},
			want: []time.Duration{time.Second, time.Second},
		},
		{
			name: "multiplier below one means constant",
			b:    backoff.Backoff{Initial: 50 * ms, Multiplier: 0.5, Jitter: -1},
			want: []time.Duration{50 * ms, 50 * ms, 50 * ms},
		},
		{
			name: "rand zero is no reduction",
			b:    backoff.Backoff{Initial: 100 * ms, Max: 400 * ms, Rand: constRand(0)},
			want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 400 * ms},
		},
		{
			name: "default jitter shortens by up to 20 percent",
			b:    backoff.Backoff{Initial: 100 * ms, Max: 400 * ms, Rand: constRand(0.5)},
			want: []time.Duration{90 * ms, 180 * ms, 360 * ms, 360 * ms},
		},
		{
			name: "equal jitter at the top of the range",
			b:    backoff.Backoff{Initial: 100 * ms, Max: 400 * ms, Jitter: 0.5, Rand: constRand(1)},
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 200 * ms},
		},
		{
			name: "out of range rand and jitter are clamped",
			b:    backoff.Backoff{Initial: 100 * ms, Jitter: 7, Rand: constRand(-3)},
			want: []time.Duration{100 * ms, 200 * ms},
		},
		{
			name: "jitter does not feed back into the sequence",
			b:    backoff.Backoff{Initial: 100 * ms, Jitter: 1, Rand: constRand(0.75)},
			want: []time.Duration{25 * ms, 50 * ms, 100 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			for i, want := range tt.want {
				if got := b.Next(); got != want {
					t.Fatalf("delay %d = %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestJitterBounds checks real random jitter against the documented range
// [(1-Jitter)·d, d] with d taken from an identical jitter-free Backoff.
func TestJitterBounds(t *testing.T) {
	t.Parallel()
	for _, jitter := range []float64{0, 0.2, 0.5, 1} {
		nominal := backoff.Backoff{Initial: 10 * ms, Max: 5 * time.Second, Jitter: -1}
		rng := rand.New(rand.NewPCG(1, uint64(jitter*100)))
		b := backoff.Backoff{Initial: 10 * ms, Max: 5 * time.Second, Jitter: jitter, Rand: rng.Float64}
		eff := jitter
		if eff == 0 {
			eff = backoff.DefaultJitter
		}
		for i := range 200 {
			d, got := nominal.Next(), b.Next()
			lo := d - time.Duration(eff*float64(d))
			if got < lo || got > d {
				t.Fatalf("jitter %v, delay %d = %v, want within [%v, %v]", jitter, i, got, lo, d)
			}
		}
	}
}

func TestNoOverflow(t *testing.T) {
	t.Parallel()
	b := backoff.Backoff{Initial: time.Hour, Max: math.MaxInt64, Multiplier: 1000, Jitter: -1}
	prev := time.Duration(0)
	for i := range 100 {
		d := b.Next()
		if d < prev || d <= 0 {
			t.Fatalf("delay %d = %v after %v", i, d, prev)
		}
		prev = d
	}
	if prev != math.MaxInt64 {
		t.Errorf("last delay = %v, want the cap %v", prev, time.Duration(math.MaxInt64))
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	b := backoff.Backoff{Jitter: -1}
	for range 5 {
		b.Next()
	}
	b.Reset()
	if got := b.Next(); got != backoff.DefaultInitial {
		t.Errorf("first delay after Reset = %v, want %v", got, backoff.DefaultInitial)
	}
	if got := b.Next(); got != 2*backoff.DefaultInitial {
		t.Errorf("second delay after Reset = %v, want %v", got, 2*backoff.DefaultInitial)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		initial time.Duration
		ctx     func(t *testing.T) context.Context
		want    error
	}{
		{
			name:    "short delay completes",
			initial: time.Millisecond,
			ctx:     func(*testing.T) context.Context { return context.Background() },
			want:    nil,
		},
		{
			name:    "already canceled",
			initial: time.Hour,
			ctx: func(*testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			want: context.Canceled,
		},
		{
			name:    "canceled while sleeping",
			initial: time.Hour,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				// Cancel from elsewhere once Wait is (very likely) asleep;
				// either way Wait must return Canceled.
				timer := time.AfterFunc(10*time.Millisecond, cancel)
				t.Cleanup(func() { timer.Stop(); cancel() })
				return ctx
			},
			want: context.Canceled,
		},
		{
			name:    "deadline before the delay ends",
			initial: time.Hour,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			want: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := backoff.Backoff{Initial: tt.initial, Max: time.Hour, Jitter: -1}
			if err := b.Wait(tt.ctx(t)); !errors.Is(err, tt.want) {
				t.Fatalf("Wait = %v, want %v", err, tt.want)
			}
		})
	}
}

// A Wait that returns at once because ctx is done must not use up a delay.
func TestWaitDoneContextDoesNotAdvance(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := backoff.Backoff{Jitter: -1}
	for range 3 {
		if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	}
	if got := b.Next(); got != backoff.DefaultInitial {
		t.Errorf("Next = %v, want %v", got, backoff.DefaultInitial)
	}
}

// Property: whatever the policy and the random draws, no delay exceeds
// Max, none is shorter than the jitter allows, and none is zero. Policies
// and draws come from a seeded source, so a failure reproduces.
func TestNoDelayAboveMax(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(14, 14))
	policies := []*backoff.Backoff{backoff.Reconnect(), backoff.Exponential(200*ms, 30*time.Second, 0.2)}
	for range 200 {
		initial := time.Duration(1 + rng.Int64N(int64(time.Second)))
		maxDelay := time.Duration(1 + rng.Int64N(int64(time.Minute)))
		policies = append(policies, backoff.Exponential(initial, maxDelay, rng.Float64()))
	}
	for i, b := range policies {
		b.Rand = rng.Float64
		nominal := *b
		nominal.Jitter = -1
		for n := range 100 {
			if n%37 == 36 {
				b.Reset()
				nominal.Reset()
			}
			d, got := nominal.Next(), b.Next()
			lo := d - time.Duration(b.Jitter*float64(d))
			if got > b.Max || got > d || got < lo || got <= 0 {
				t.Fatalf("policy %d (initial %v, max %v, jitter %v), delay %d = %v, want within [%v, %v] and at most max",
					i, b.Initial, b.Max, b.Jitter, n, got, lo, d)
			}
		}
	}
}

// Reconnect is the policy tunnel-host and tunnel-client connect had
// written out: 100ms doubling to 12.8s, delays in [d/2, d].
func TestReconnectPolicy(t *testing.T) {
	t.Parallel()
	b := backoff.Reconnect()
	b.Rand = constRand(1)
	want := []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 6400 * ms}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("delay %d = %v, want %v", i, got, w)
		}
	}
}
