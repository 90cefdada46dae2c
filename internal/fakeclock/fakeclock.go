package fakeclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use; Now is the value to put in a Config.
type Clock struct {
	mu      sync.Mutex
	stopped bool
	at      time.Time     // the time, when stopped
	offset  time.Duration // added to the wall clock, when running
}

// At returns a clock stopped at t: it moves only by Advance.
func At(t time.Time) *Clock { return &Clock{stopped: true, at: t} }

// Running returns a clock that follows the wall clock, shifted forward by
// every Advance. Use it where the engine also measures real durations.
func Running() *Clock { return &Clock{} }

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.at
	}
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
	c.offset += d
}
