// Package turnclient is the engine of `tunnel-client turn`: it resolves
// TURN credentials through a provider, runs N supervised workers (each one
// TURN allocation plus one DTLS session to tunnel-server through the relay)
// and dispatches local traffic over them: UDP datagrams (udp ingress)
// tagged with a per-local-peer id on sessions that negotiated the framed
// overlay, or with exclusive worker→peer reply bindings and roaming
// takeover on raw (compat) sessions; or TCP connections as smux streams
// over KCP over DTLS (tcp ingress). See docs/protocols/turn-overlay.md
// §2.4 and §3.1–3.2.
//
// Each worker also checks its allocation every Config.AllocationCheck with
// a CreatePermission for the peer: pion only logs a failed refresh, so over
// UDP a TURN server that lost the allocation would otherwise black-hole the
// worker's traffic while it stays ready. A failed check is a post-ready
// failure like any other and goes through the restart budget.
package turnclient
