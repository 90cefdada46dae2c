package tunnelrelay

import (
	"context"
	"io"
	"log"
	"net"
	"testing"
	"time"

	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// TestGoSDKClient connects the official Go SDK client (v0.1.28, which only
// speaks tunnel-relay-client) through ServeClient to the test host, on a V1
// and a V2 host session, and echoes bytes through a forwarded port.
func TestGoSDKClient(t *testing.T) {
	for _, hostProto := range []string{tunnelproto.SubprotocolHostV1, tunnelproto.SubprotocolHostV2} {
		t.Run(hostProto, func(t *testing.T) {
			e := newEnv(t)
			e.dialHost(hostProto)
			tun := &tunnels.Tunnel{
				Name:         testTunnel,
				AccessTokens: map[tunnels.TunnelAccessScope]string{tunnels.TunnelAccessScopeConnect: e.token(testTunnel, "connect")},
				Endpoints: []tunnels.TunnelEndpoint{{
					HostID:         "host1",
					ConnectionMode: tunnels.TunnelConnectionModeTunnelRelay,
					TunnelRelayTunnelEndpoint: tunnels.TunnelRelayTunnelEndpoint{
						ClientRelayURI: e.url("client", testTunnel),
					},
				}},
			}
			c, err := tunnels.NewClient(log.New(io.Discard, "", 0), tun, false)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Connect(ctx, ""); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer c.Close()
			port := uint16(e.echoPort())
			if err := sdktest.WaitForwarded(ctx, c, port); err != nil {
				t.Fatalf("WaitForForwardedPort: %v", err)
			}
			mine, theirs := net.Pipe()
			defer mine.Close()
			fwdCtx, fwdCancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.ConnectToForwardedPort(fwdCtx, theirs, port) }()
			_ = mine.SetDeadline(time.Now().Add(5 * time.Second))
			echoRoundTrip(t, mine, "hello from the Go SDK")
			fwdCancel()
			<-done
		})
	}
}
