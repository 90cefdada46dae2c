package checks

import (
	"context"
	"log/slog"
	"sync"
)

// errCapture is a slog.Handler for an engine the probe drives (the tunnel
// client): it remembers the "err" of the last warning or error, which is
// what the operator needs when the check times out while the engine
// retries, and passes records on only when the probe logs at debug level,
// so a CI log is not filled with the engine's retries.
type errCapture struct {
	next  slog.Handler // nil: nothing passed on
	state *captureState
}

type captureState struct {
	mu   sync.Mutex
	last string
}

func newErrCapture(l *slog.Logger) *errCapture {
	c := &errCapture{state: &captureState{}}
	if l != nil && l.Enabled(context.Background(), slog.LevelDebug) {
		c.next = l.Handler()
	}
	return c
}

func (c *errCapture) lastErr() string {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	return c.state.last
}

func (c *errCapture) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || (c.next != nil && c.next.Enabled(ctx, l))
}

func (c *errCapture) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				c.state.mu.Lock()
				c.state.last = r.Message + ": " + a.Value.String()
				c.state.mu.Unlock()
				return false
			}
			return true
		})
	}
	if c.next != nil && c.next.Enabled(ctx, r.Level) {
		return c.next.Handle(ctx, r)
	}
	return nil
}

func (c *errCapture) WithAttrs(as []slog.Attr) slog.Handler {
	n := &errCapture{state: c.state}
	if c.next != nil {
		n.next = c.next.WithAttrs(as)
	}
	return n
}

func (c *errCapture) WithGroup(name string) slog.Handler {
	n := &errCapture{state: c.state}
	if c.next != nil {
		n.next = c.next.WithGroup(name)
	}
	return n
}
