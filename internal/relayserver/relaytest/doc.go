// Package relaytest runs a real relay-server engine (internal/relayserver with a
// SQLite store) on a loopback port for the tests and benchmarks of the
// packages that talk to it, with an operator API key and a tunnel ready,
// plus the small loopback servers those tests share. Only tests import it.
package relaytest
