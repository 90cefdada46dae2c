package tunnelhost

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them.
//
// The Dev Tunnels Go SDK (the interop peer here) calls ssh.NewClient with a
// nil global-request channel, so x/crypto's handleGlobalRequests ranges over
// a nil channel for ever, one goroutine per SDK connection, even after
// Close. warren's own code never builds an ssh.Client, so ignoring that one
// function hides only the SDK's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("golang.org/x/crypto/ssh.(*Client).handleGlobalRequests"))
}
