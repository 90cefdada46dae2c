package cli

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// runDaemonParked reports whether the goroutine running RunDaemon is parked
// in its select. A loop that keeps selecting a closed channel never parks.
func runDaemonParked() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cli.(*App).RunDaemon(") {
			header, _, _ := strings.Cut(g, "\n")
			return strings.Contains(header, "[select")
		}
	}
	return false
}

// Once the parent context is cancelled, RunDaemon waits for the engine to
// drain without spinning: its goroutine parks in select.
func TestRunDaemonDoesNotSpinWhileDraining(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	parked := make(chan bool, 1)
	build := func(a *App) *cobra.Command {
		cfg := &struct {
			Daemon `yaml:",inline"`
		}{Daemon: DefaultDaemon()}
		return a.NewRoot(cfg, func(cmd *cobra.Command, _ []string) error {
			return a.RunDaemon(cmd.Context(), func(ctx context.Context) error {
				cancel()
				<-ctx.Done()
				// Draining: bounded poll for RunDaemon to block.
				deadline := time.Now().Add(10 * time.Second)
				ok := runDaemonParked()
				for !ok && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
					ok = runDaemonParked()
				}
				parked <- ok
				return nil
			})
		})
	}
	var out, errb bytes.Buffer
	code := Run(ctx, Spec{Name: "testbin"}, build, nil, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !<-parked {
		t.Fatal("RunDaemon never blocked while the engine drained: it spins on the cancelled context")
	}
}
