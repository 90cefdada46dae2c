// Package wingagent is the machine agent of the wing protocol
// (docs/protocols/wing.md): it dials the relay's /ws/wing, registers,
// heartbeats, reconnects with backoff, and runs PTY sessions on real
// pseudo-terminals. Every byte of PTY output and input crosses the relay
// encrypted with a key derived from the wing's long-term X25519 identity
// and the user's public key; a session without a user key is refused.
// Sessions outlive relay connections and are reattached with a replay of
// their recent output. A controller that acknowledges output (pty.ack)
// gets a window (Config.OutputWindow, 2 MiB): the session's PTY is not
// read while that much relay output is unacknowledged, so a fast program
// waits for a slow viewer instead of overflowing the relay's send queue
// (flow.go; docs/protocols/wing.md §2.12).
package wingagent
