// Package relayserver assembles relay-server: one HTTP handler tree that
// serves health, readiness and metrics, and mounts its services: the Dev
// Tunnels management API and relay (internal/devtunnels), the wing hub
// (internal/wing/winghub) and the ticket byte relay (internal/ticket).
//
// The caller opens the listener (plain or TLS) and passes it to Serve, so
// tests run the real server on a loopback port of their choosing.
package relayserver
