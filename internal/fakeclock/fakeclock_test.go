package fakeclock

import (
	"testing"
	"time"
)

func TestAt(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := At(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now %v, want %v", c.Now(), t0)
	}
	c.Advance(time.Hour)
	if !c.Now().Equal(t0.Add(time.Hour)) {
		t.Fatalf("after Advance: %v", c.Now())
	}
}

func TestRunning(t *testing.T) {
	c := Running()
	before := time.Now()
	c.Advance(time.Hour)
	if got := c.Now(); got.Before(before.Add(time.Hour)) {
		t.Fatalf("Now %v is not an hour past %v", got, before)
	}
}
