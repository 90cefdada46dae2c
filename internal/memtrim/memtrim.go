// Package memtrim gives memory back to the operating system after the
// number of open connections of a process falls sharply.
//
// Why: when a relay, a tunnel host or a tunnel client closes most of
// thousands of connections at once, what they used (heap objects, the
// stacks of their goroutines) is garbage, but the Go runtime returns it
// to the OS only slowly: dead goroutines' stacks are freed at the next
// garbage collection, which a quiet process may not run for two minutes
// (the runtime's forced GC period), and the background scavenger releases
// free pages at a pace of about 1% of one CPU while keeping about 10% over
// the heap goal. The process's RSS then stays at the peak long after the
// load is gone, which operators read as a leak and which counts against
// the memory of whatever else runs on the machine.
//
// So pipe.Join counts its splices here (Opened, Closed), and once the
// count has fallen to half its peak or less (a peak of at least MinPeak),
// one runtime/debug.FreeOSMemory runs when the closes have stopped for
// Settle (so that a burst of closes is trimmed once, after its garbage is
// made; MaxWait at the latest), never more often than MinInterval,
// after one more runtime.GC: what sync.Pools cache survives one collection
// (it moves to their victim caches), and a burst of closes can leave a
// pool full. FreeOSMemory is a full, blocking collection plus a release
// of every free page: a few milliseconds for a heap of tens of MiB, twice
// here, a cost paid only after a large drop and rate-limited, against the
// tens or hundreds of MiB it gives back.
package memtrim

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// MinPeak is the smallest peak of open connections whose fall is
	// worth a trim: below it the memory at stake is a few MiB.
	MinPeak = 256
	// Settle is how long closes must have stopped before the trim, so
	// that the rest of a burst of closes lands in the same trim.
	Settle = 500 * time.Millisecond
	// MaxWait bounds the wait for closes to stop.
	MaxWait = 5 * time.Second
	// MinInterval is the least time between two trims.
	MinInterval = 10 * time.Second
)

var (
	open atomic.Int64

	mu        sync.Mutex
	peak      int64     // most open since the last trim
	scheduled bool      // a trim is pending
	since     time.Time // when the pending trim was scheduled
	lastClose time.Time // the latest Closed while a trim is pending
	last      time.Time // the last trim
	trims     atomic.Int64

	// Tests replace these.
	freeOSMemory = func() { runtime.GC(); debug.FreeOSMemory() }
	settle       = Settle
	maxWait      = MaxWait
	minInterval  = MinInterval
)

// Opened counts one more open connection.
func Opened() {
	n := open.Add(1)
	mu.Lock()
	if n > peak {
		peak = n
	}
	mu.Unlock()
}

// Closed counts one connection less and schedules a trim when the count
// fell to half its peak.
func Closed() {
	n := open.Add(-1)
	mu.Lock()
	defer mu.Unlock()
	if scheduled {
		lastClose = time.Now()
		return
	}
	if peak < MinPeak || n > peak/2 {
		return
	}
	scheduled = true
	since, lastClose = time.Now(), time.Now()
	wait := settle
	if d := minInterval - time.Since(last); d > wait {
		wait = d
	}
	time.AfterFunc(wait, trim)
}

func trim() {
	mu.Lock()
	// Closes still coming: wait until they stop (or MaxWait passed).
	if quiet := time.Since(lastClose); quiet < settle && time.Since(since) < maxWait {
		time.AfterFunc(settle-quiet, trim)
		mu.Unlock()
		return
	}
	mu.Unlock()
	freeOSMemory()
	trims.Add(1)
	mu.Lock()
	last = time.Now()
	peak = open.Load()
	scheduled = false
	mu.Unlock()
}

// Open is the number of open connections counted.
func Open() int64 { return open.Load() }

// Trims is how many trims ran.
func Trims() int64 { return trims.Load() }
