package memtrim

import (
	"testing"
	"time"
)

// TestTrimAfterSharpFall: a fall to half of a large peak trims once; a
// small peak's fall, or a mild one, does not.
func TestTrimAfterSharpFall(t *testing.T) {
	calls := make(chan struct{}, 10)
	freeOSMemory = func() { calls <- struct{}{} }
	// Closes stop once the loops below end: the trim waits for that.
	settle, maxWait, minInterval = 100*time.Millisecond, time.Hour, 0
	mu.Lock()
	open.Store(0)
	peak, scheduled, last = 0, false, time.Time{}
	trims.Store(0)
	mu.Unlock()
	t.Cleanup(func() {
		freeOSMemory, settle, maxWait, minInterval = nil, Settle, MaxWait, MinInterval
	})

	for range MinPeak - 1 {
		Opened()
	}
	for range MinPeak - 1 {
		Closed()
	}
	// A small peak: nothing to trim. (Scheduling is synchronous, so a
	// trim that was not scheduled by now never runs.)
	if scheduled {
		t.Fatal("a trim was scheduled after a peak below MinPeak")
	}

	for range 2 * MinPeak {
		Opened()
	}
	for range MinPeak - 1 {
		Closed() // still more than half open
	}
	if scheduled {
		t.Fatal("a trim was scheduled before the count fell to half")
	}
	for range MinPeak + 1 {
		Closed()
	}
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after the count fell to zero")
	}
	deadline := time.Now().Add(10 * time.Second)
	for Trims() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if Trims() != 1 || Open() != 0 {
		t.Fatalf("after the trim: %d trims, %d open", Trims(), Open())
	}
	select {
	case <-calls:
		t.Fatal("one burst of closes trimmed twice")
	default:
	}
}
