package sdktest

import (
	"context"
	"io"
	"log"
	"net/url"
	"testing"
	"time"

	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
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

// Connect gets tunnel with a connect token through apiKey, the way the
// SDK's Manager does, checks it lists exactly one (connected) host
// endpoint, and connects the SDK client (the V1 relay path). The client
// is closed when the test ends. acceptLocalConnectionsForForwardedPorts is
// false: with true the SDK would listen on 127.0.0.1:P, which the test's
// own server on P already holds.
func Connect(tb testing.TB, ctx context.Context, relayURL, apiKey, tunnel string) *tunnels.Client {
	tb.Helper()
	u, err := url.Parse(relayURL)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := tunnels.NewManager([]tunnels.UserAgent{{Name: "warren-test", Version: "1"}},
		func() string { return "Bearer " + apiKey }, u, nil, tunnelproto.APIVersion)
	if err != nil {
		tb.Fatal(err)
	}
	tun, err := m.GetTunnel(ctx, &tunnels.Tunnel{Name: tunnel}, &tunnels.TunnelRequestOptions{
		IncludePorts: true, TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeConnect}})
	if err != nil {
		tb.Fatalf("GetTunnel: %v", err)
	}
	if len(tun.Endpoints) != 1 {
		tb.Fatalf("endpoints with the host connected: %d", len(tun.Endpoints))
	}
	// The SDK logs the Authorization header, token included, through
	// this logger: discard it.
	c, err := tunnels.NewClient(log.New(io.Discard, "", 0), tun, false)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Connect(ctx, ""); err != nil {
		tb.Fatalf("SDK connect: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
