package sdktest

import (
	"context"
	"time"

	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"
)

// WaitForwarded waits until the host has forwarded port to client c.
//
// It exists because the SDK's own WaitForForwardedPort (v0.1.28) can miss
// the port for good: it checks its port set, then waits on an unbuffered
// channel that the SSH handler writes to without blocking, so a
// tcpip-forward arriving between the check and the wait is dropped and the
// call hangs until ctx ends. Asking again in short rounds sees the port set
// the handler did update.
func WaitForwarded(ctx context.Context, c *tunnels.Client, port uint16) error {
	for {
		round, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := c.WaitForForwardedPort(round, port)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
