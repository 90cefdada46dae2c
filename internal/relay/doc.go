// Package relay is relay-server's engine: one HTTP handler tree that serves
// health, readiness and metrics, and mounts the services of the relay (the
// ticket byte relay today; tunnels and the wing hub as they land).
//
// The caller opens the listener (plain or TLS) and passes it to Serve, so
// tests run the real server on a loopback port of their choosing.
package relay
