package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownGrace is how long past --shutdown-timeout the shared layer waits
// for an engine that does not honour it before giving up on it.
const shutdownGrace = 2 * time.Second

// RunDaemon runs serve until it returns or a signal stops it.
//
// SIGINT/SIGTERM cancel serve's context: the engine stops accepting and
// drains, using the shutdown timeout it was configured with. A second
// signal, or the timeout passing (plus a short grace), returns at once with
// exit code 1. SIGHUP reloads the config and runs the OnReload hooks. A
// serve that returns nil or context.Canceled after a signal is a clean stop.
func (a *App) RunDaemon(ctx context.Context, serve func(ctx context.Context) error) error {
	timeout := a.ShutdownTimeout()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(runCtx) }()

	var deadline <-chan time.Time
	// parentDone is set to nil once seen: a closed channel stays ready, and
	// selecting it again would spin this loop for the whole drain.
	parentDone := ctx.Done()
	stopping := false
	for {
		select {
		case err := <-done:
			if stopping && (err == nil || errors.Is(err, context.Canceled)) {
				a.Logger.Info("stopped")
				return nil
			}
			return err
		case <-deadline:
			return &ExitError{Code: ExitFailure, Err: fmt.Errorf("shutdown did not finish within %s", timeout)}
		case <-parentDone:
			parentDone = nil
			if !stopping {
				stopping = true
				cancel()
				deadline = time.After(timeout + shutdownGrace)
			}
		case s := <-sigs:
			switch {
			case s == syscall.SIGHUP:
				a.reload(runCtx)
			case stopping:
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("second %s: stopping now without draining", s)}
			default:
				a.Logger.Info("shutting down", "signal", s.String(), "timeout", timeout)
				stopping = true
				cancel()
				deadline = time.After(timeout + shutdownGrace)
			}
		}
	}
}

// ShutdownTimeout is the configured drain time of a daemon (10 s when the
// config has no Daemon section).
func (a *App) ShutdownTimeout() time.Duration {
	if d, ok := a.cfg.Interface().(interface{ daemon() *Daemon }); ok {
		return d.daemon().ShutdownTimeout
	}
	return 10 * time.Second
}
