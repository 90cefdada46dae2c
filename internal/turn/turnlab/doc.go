// Package turnlab is a loopback TURN lab for tests, `make demo` and probe
// checks: an in-process pion/turn server listening on 127.0.0.1 over UDP and
// TCP (realm turn.lab, user turn-lab-user / turn-lab-pass, relay address
// 127.0.0.1, optional TURN REST shared secret) plus UDP and TCP echo
// upstreams. It can kill its allocations, or restart its TURN server on the same ports,
// so that tests exercise restarts.
package turnlab
