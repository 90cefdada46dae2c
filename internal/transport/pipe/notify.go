package pipe

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/warrenhq/warren/internal/worker"
)

// notifier is a consumer that says when it has something to consume:
// warren's SSH channels (sshfork's SetDataNotify and ConsumeDataNow). A
// copy out of one needs no goroutine parked on it while it is idle: it
// runs when data (or the end of it) arrives, on the channel's reader
// (inlineNotifier) or a worker goroutine (internal/worker), and stops once
// the queue is empty. For a relay holding thousands of quiet connections,
// that is thousands of stacks it does not keep.
type notifier interface {
	consumer
	// SetDataNotify has fn called (possibly spuriously, never blocking)
	// whenever ConsumeDataNow may have something; at once if it has.
	SetDataNotify(fn func())
	// ConsumeDataNow is ConsumeData that returns 0 and a nil error at
	// once when nothing is queued.
	ConsumeDataNow(fn func(p []byte) error) (int, error)
}

// inlineNotifier is a notifier that can run the copy on the goroutine
// that received the data (sshfork's SetDataNotifyInline): the bytes are
// written on the core that read them, with no wake-up in between, and a
// copy that has to wait is taken off that goroutine by the source.
type inlineNotifier interface {
	SetDataNotifyInline(fn func())
}

// forwarder is a notifier that writes to a destination itself
// (sshfork's ForwardDataNow): into another SSH channel, it sends each
// received packet on as it is instead of copying its payload into a new
// one, which is what a relay splicing two channels does for every byte.
type forwarder interface {
	ForwardDataNow(dst io.Writer, done func(n int, err error) error) (int, error)
}

// notified is the copy of one direction out of a notifier.
type notified struct {
	j     *joiner
	dir   Direction
	src   notifier
	total int64
	// consume is ConsumeDataNow into write, or ForwardDataNow.
	consume func() (int, error)
	drainFn func() // drain, for kick's worker.Go without a closure per kick
	// kicks counts notifications; a drain runs while it is non-zero and
	// the one that takes it from zero starts the drain. After the end
	// it is left non-zero so that no drain starts again.
	kicks atomic.Int64
}

func (j *joiner) startNotified(dir Direction, src notifier) {
	c := &notified{j: j, dir: dir, src: src}
	if f, ok := src.(forwarder); ok {
		dst, done := j.ends[1-dir].rwc, j.consumeDone(dir, &c.total)
		c.consume = func() (int, error) { return f.ForwardDataNow(dst, done) }
	} else {
		write := j.consumeWriter(dir, &c.total)
		c.consume = func() (int, error) { return src.ConsumeDataNow(write) }
	}
	if in, ok := src.(inlineNotifier); ok {
		in.SetDataNotifyInline(c.kickInline)
		return
	}
	c.drainFn = c.drain
	src.SetDataNotify(c.kick)
}

// kick is the notify func: it starts a drain unless one is running, which
// then sees the new count and looks again before it ends.
func (c *notified) kick() {
	if c.kicks.Add(1) == 1 {
		worker.Go(c.drainFn)
	}
}

// kickInline is kick for SetDataNotifyInline: the drain runs on the
// caller's goroutine, which may wait.
func (c *notified) kickInline() {
	if c.kicks.Add(1) == 1 {
		c.drain()
	}
}

func (c *notified) drain() {
	for {
		k := c.kicks.Load()
		for {
			n, err := c.consume()
			if err != nil {
				c.end(err)
				return
			}
			if n == 0 {
				break
			}
		}
		if c.kicks.CompareAndSwap(k, 0) {
			return
		}
	}
}

// end finishes the direction; the source had an error, EOF included.
func (c *notified) end(err error) {
	c.src.SetDataNotify(nil)
	j, dir := c.j, c.dir
	var we *writeError
	switch {
	case errors.As(err, &we):
		err = j.failed(dir, "write", &j.ends[1-dir], we.err)
	case errors.Is(err, io.EOF):
		err = j.eof(dir, &j.ends[1-dir])
	default:
		err = j.failed(dir, "read", &j.ends[dir], err)
	}
	j.finish(dir, c.total, err)
}
