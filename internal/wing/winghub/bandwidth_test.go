package winghub

import (
	"testing"
	"time"
)

// TestMeter checks the token bucket and the monthly cap with a fake clock.
func TestMeter(t *testing.T) {
	now := time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)
	m := newMeter(Bandwidth{Rate: 1 << 20, Burst: 1 << 20, MonthlyCap: 3 << 20})
	m.now = func() time.Time { return now }
	if d, ok := m.take("u", 1<<20); !ok || d != 0 {
		t.Fatalf("burst: %v %v", d, ok)
	}
	if d, ok := m.take("u", 512<<10); !ok || d != 500*time.Millisecond {
		t.Fatalf("past the burst: %v %v", d, ok)
	}
	if d, _ := m.take("v", 1<<20); d != 0 {
		t.Fatal("users share a bucket")
	}
	now = now.Add(2 * time.Second) // refilled, capped at the burst
	if d, ok := m.take("u", 1<<20); !ok || d != 0 {
		t.Fatalf("after refill: %v %v", d, ok)
	}
	if _, ok := m.take("u", 1<<20); ok {
		t.Fatal("monthly cap not enforced") // 3.5 MiB > 3 MiB
	}
	now = now.Add(time.Minute) // February
	if _, ok := m.take("u", 1<<10); !ok {
		t.Fatal("the cap did not reset with the month")
	}
}
