package worker

import "time"

// IdleTime is how long a worker waits for another job before it ends.
const IdleTime = 50 * time.Millisecond

var jobs = make(chan func())

// Go runs f on an idle worker if one is waiting, else on a new one. It
// never blocks.
func Go(f func()) {
	select {
	case jobs <- f:
	default:
		go work(f)
	}
}

func work(f func()) {
	t := time.NewTimer(IdleTime)
	defer t.Stop()
	for {
		f()
		t.Reset(IdleTime)
		select {
		case f = <-jobs:
		case <-t.C:
			return
		}
	}
}
