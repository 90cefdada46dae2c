package worker

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain also checks that every worker has ended once the jobs stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goid is the running goroutine's id, from its stack header.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	return string(bytes.Fields(b)[1])
}

// TestGo runs many jobs at once, each exactly once; a job that comes while
// a worker is idle runs on that worker; workers end IdleTime after their
// last job.
func TestGo(t *testing.T) {
	var ran atomic.Int64
	var wg sync.WaitGroup
	const n = 1000
	wg.Add(n)
	for range n {
		Go(func() { ran.Add(1); wg.Done() })
	}
	wg.Wait()
	if got := ran.Load(); got != n {
		t.Fatalf("ran %d jobs, want %d", got, n)
	}
	time.Sleep(2 * IdleTime) // the burst's workers end

	ids := make(chan string)
	Go(func() { ids <- goid() })
	first := <-ids
	reused := false
	for range 50 { // the first worker needs a moment to wait again
		time.Sleep(time.Millisecond)
		Go(func() { ids <- goid() })
		if <-ids == first {
			reused = true
			break
		}
	}
	if !reused {
		t.Error("a job that came while a worker was idle ran on a new goroutine")
	}
	time.Sleep(3 * IdleTime)
}
