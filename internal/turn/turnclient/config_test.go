package turnclient

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Restart delays (docs/protocols/turn-overlay.md §3.2) double from BackoffInitial and, jittered,
// never exceed BackoffMax — the hand-rolled ±20 % jitter they replace
// could reach 1.2 × BackoffMax.
func TestRestartDelaysStayUnderMax(t *testing.T) {
	var cfg Config
	cfg.setDefaults()
	rng := rand.New(rand.NewPCG(3, 2))
	for run := range 50 {
		b := cfg.restartBackoff()
		b.Rand = rng.Float64
		nominal := cfg.BackoffInitial
		for n := range 40 {
			d := b.Next()
			if d > cfg.BackoffMax || d > nominal || d < time.Duration((1-RestartJitter)*float64(nominal)) {
				t.Fatalf("run %d, restart %d: delay %v, want within [%v, %v], max %v", run, n, d,
					time.Duration((1-RestartJitter)*float64(nominal)), nominal, cfg.BackoffMax)
			}
			nominal = min(2*nominal, cfg.BackoffMax)
		}
	}
}
